"""Every call into llama.cpp runs on the pool's one inference thread (llama.cpp keeps an OpenMP
thread team per calling thread; two live teams on two cores slowed every decode by a third)."""

import threading

import pytest

from core.backends.llama import LlamaPool


def test_calls_from_many_threads_run_on_one_thread_in_turn() -> None:
    pool = LlamaPool()
    seen: list[int] = []
    inside = 0
    overlapped = False

    def work(i: int) -> int:
        nonlocal inside, overlapped
        inside += 1
        overlapped |= inside > 1
        seen.append(threading.get_ident())
        threading.Event().wait(0.001)
        inside -= 1
        return i * 2

    results: dict[int, int] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, pool.call(work, i)))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: i * 2 for i in range(8)}
    assert len(set(seen)) == 1 and threading.get_ident() not in seen
    assert not overlapped


def test_a_call_made_on_the_inference_thread_runs_at_once_and_errors_reach_the_caller() -> None:
    pool = LlamaPool()

    def outer() -> tuple[int, int]:
        return threading.get_ident(), pool.call(threading.get_ident)  # would deadlock if queued

    here, nested = pool.call(outer)
    assert here == nested

    def fail() -> None:
        raise ValueError("llama.cpp rejected the grammar")

    with pytest.raises(ValueError, match="rejected the grammar"):
        pool.call(fail)
