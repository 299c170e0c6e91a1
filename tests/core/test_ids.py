"""Random ids from a buffer of the OS's randomness: unique, hex, and never shared by a forked child."""

import os

from core.ids import new_id


def test_ids_are_32_hex_chars_and_unique_across_refills() -> None:
    ids = [new_id() for _ in range(3 * 4096 // 16)]  # three refills of the buffer
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    new_id()  # the parent's buffer now holds bytes it has not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.close(read)
        os.write(write, "".join(new_id() for _ in range(8)).encode())
        os._exit(0)
    os.close(write)
    child = b""
    while chunk := os.read(read, 4096):
        child += chunk
    os.close(read)
    assert os.waitpid(pid, 0)[1] == 0
    child_ids = {child[i:i + 32].decode() for i in range(0, len(child), 32)}
    parent_ids = {new_id() for _ in range(8)}
    assert len(child_ids) == 8 and not child_ids & parent_ids
