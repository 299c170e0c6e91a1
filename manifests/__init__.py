"""App manifests as data, one folder per platform, with ``{base_url}`` where the public URL goes.

``render(base_url, out)`` writes every platform's manifests with the URL filled in
(``baton manifests render``); connectors read the same data so that what is installed in the
platform and what the routes accept cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).parent


def load(platform: str, name: str, base_url: str = "{base_url}") -> Any:
    """A manifest file as data, with ``{base_url}`` replaced."""
    text = (HERE / platform / f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text.replace("{base_url}", base_url.rstrip("/")))


def platforms() -> list[str]:
    return sorted(p.name for p in HERE.iterdir() if p.is_dir() and not p.name.startswith("_"))


def check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"expected the public base URL like https://baton.example.com, "
                         f"got {base_url!r}")
    return base_url.rstrip("/")


def render(base_url: str, out: Path) -> list[Path]:
    """Write every platform's manifests under ``out/<platform>/``; return the files written."""
    base_url = check_base_url(base_url)
    written = []
    for platform in platforms():
        for source in sorted((HERE / platform).glob("*.json")):
            target = out / platform / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(load(platform, source.stem, base_url), indent=2,
                                         ensure_ascii=False) + "\n", encoding="utf-8")
            written.append(target)
    return written
