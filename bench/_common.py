"""Shared set-up for the benchmarks: the embedded model, a throwaway data directory, two brands."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.backends.model_file import assemble_embedded
from core.policy import BrandVoice, Example
from core.settings import Settings


def bench_settings(**overrides: object) -> Settings:
    data = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    model = assemble_embedded(Path.home() / ".baton" / "models")
    return Settings(data_dir=data, model_path=model, **overrides)  # type: ignore[arg-type]


def _examples(brand: str, products: list[tuple[str, str, str]]) -> list[Example]:
    out = []
    for company, bought, suggestion in products:
        out.append(Example(
            kind="email", language="en",
            brief=f"Thank them for the {bought} and suggest the {suggestion}.",
            contact={"first_name": "{first_name}", "company": company, "last_purchase": bought},
            output={
                "subject": f"{{first_name}}, a little extra for your {bought}",
                "preheader": f"Why the {suggestion} pairs so well with it",
                "body": (f"Hi {{first_name}},\n\nThank you for choosing the {bought} from {brand}. "
                         f"Customers who use it every week tell us the {suggestion} makes it "
                         "last longer and work better, and it takes five minutes to set up. "
                         "If anything about your order is not right, just reply to this email "
                         "and a real person on our team will sort it out.\n\nAll the best,"),
            },
        ))
    return out


GUIDE = (
    "Brand guidelines. We write like a knowledgeable friend, never like an advertisement. "
    "Sentences are short and concrete; we name the product and the benefit in plain words. "
    "We never promise discounts that are not in the brief, never invent prices, dates or "
    "product names, and never pressure the reader with false urgency. We thank customers "
    "sincerely, we respect their time, and we always make it easy to reply to a human. "
    "Subject lines stay under nine words and use the customer's first name when it helps. "
    "The preheader adds one useful fact rather than repeating the subject. "
)

BRANDS: dict[str, BrandVoice] = {
    "northwind": BrandVoice(
        name="Northwind Outfitters",
        tone="warm, practical and outdoorsy",
        audience="hikers and campers who bought from us before",
        description=GUIDE + "Northwind talks about trails, weather and gear that lasts.",
        sign_off="— The Northwind team",
        examples=_examples("Northwind Outfitters", [
            ("Ridge Runners Club", "Trail Runner 2 shoes", "Shoe Care Kit"),
            ("Blue Harbor Studio", "Rain Shell jacket", "Fleece Midlayer"),
            ("Summit Scouts", "Summit 40L backpack", "Rain Cover"),
        ]),
    ),
    "lumen": BrandVoice(
        name="Lumen Coffee Roasters",
        tone="cheerful, precise and a little nerdy about coffee",
        audience="home baristas on our subscription",
        description=GUIDE + "Lumen talks about origins, roast dates and brewing ratios.",
        sign_off="— Lumen Coffee Roasters",
        examples=_examples("Lumen Coffee Roasters", [
            ("Corner Office Ltd", "Ethiopia Guji beans", "ceramic pour-over dripper"),
            ("Bright Bakes", "espresso grinder", "precision scale"),
            ("Studio Nine", "cold brew kit", "Colombia Huila beans"),
        ]),
    ),
}


@contextmanager
def llama_server(model: Path, *, threads: int = 2, n_ctx: int = 4096,
                 alias: str | None = None,
                 started: list[subprocess.Popen[bytes]] | None = None) -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server``) on a free
    loopback port, serving ``model``; yields its base URL (``http://127.0.0.1:PORT/v1``). The
    process is appended to ``started`` (a test that kills a server mid-run)."""
    import openai

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
               "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads)]
    if alias:
        command += ["--model_alias", alias]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if started is not None:
        started.append(proc)
    base_url = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=2)
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("llama_cpp.server did not start") from None
                time.sleep(0.3)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
