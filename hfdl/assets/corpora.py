"""Public-domain text corpora from Debian packages (no root needed: `apt-get download` + `dpkg -x`)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from hfdl.assets.cache import hfdl_cache_dir, private_tmp
from hfdl.errors import HfdlError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusAsset:
    """A public-domain text shipped in Debian packages, fetched with `apt-get download` + `dpkg -x` (no root needed)."""

    name: str
    debian_packages: tuple[str, ...]
    probe: str  # a file inside the unpacked packages
    license: str
    origin: str
    hub_equivalent: str
    description: str

    def provenance(self) -> dict:
        return {**asdict(self), "debian_packages": list(self.debian_packages)}


CORPORA: dict[str, CorpusAsset] = {
    "austen": CorpusAsset(
        name="austen",
        debian_packages=("r-cran-janeaustenr",),
        probe="usr/lib/R/site-library/janeaustenr/data/Rdata.rdb",
        license="mit (package); public domain (texts)",
        origin="Jane Austen's six novels from Project Gutenberg as packaged by the R package janeaustenr (Debian r-cran-janeaustenr), read with PyPI rdata",
        hub_equivalent="(none official; any Hub dataset of Austen's novels with --dataset_name and --text_column)",
        description="Sense and Sensibility, Pride and Prejudice, Mansfield Park, Emma, Northanger Abbey, Persuasion (publication order, ~4.0 M characters)",
    ),
    "kjv": CorpusAsset(
        name="kjv",
        debian_packages=("bible-kjv", "bible-kjv-text"),
        probe="usr/lib/bible.data",
        license="public domain",
        origin="King James Version (1611) text of Debian bible-kjv-text, decompressed by Debian bible-kjv's `bible` program; one verse per line with its reference (e.g. 'Ge1:1')",
        hub_equivalent="(none official; any Hub KJV dataset with --dataset_name and --text_column)",
        description="King James Bible, Genesis to Revelation, 31,102 verses (~4.4 M characters)",
    ),
}

# janeaustenr's data object -> title, in janeaustenr::austen_books() order (publication order, Northanger Abbey posthumous)
AUSTEN_TITLES = {
    "sensesensibility": "Sense and Sensibility",
    "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
_AUSTEN_JOINER = "\n\n\n"  # between books in load_corpus("austen")


def _unpacked_debs(asset: CorpusAsset, needed: tuple[str, ...]) -> Path:
    """Root under which the asset's package files lie: `/` when installed, else an unpacked copy in hfdl's cache."""
    import shutil
    import subprocess
    import tempfile

    if all((Path("/") / rel).exists() for rel in needed):
        return Path("/")
    root = hfdl_cache_dir() / "debs" / asset.name
    if all((root / rel).exists() for rel in needed):
        return root
    fix = f"or use --train_file / --dataset_name with internet (Debian packages: {' '.join(asset.debian_packages)})"
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        raise HfdlError(f"offline corpus '{asset.name}' needs apt-get and dpkg to fetch {' '.join(asset.debian_packages)}: run on Debian/Ubuntu, {fix}")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["apt-get", "download", *asset.debian_packages], cwd=tmp, capture_output=True, text=True)
        debs = sorted(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or len(debs) != len(asset.debian_packages):
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
            raise HfdlError(f"offline corpus '{asset.name}': `apt-get download {' '.join(asset.debian_packages)}` failed ({last}): run `apt-get update`, {fix}")
        staging = private_tmp(root)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            for deb in debs:
                subprocess.run(["dpkg", "-x", str(deb), str(staging)], check=True, capture_output=True)
            if all((root / rel).exists() for rel in needed):  # another process unpacked it first: keep theirs
                return root
            shutil.rmtree(root, ignore_errors=True)
            staging.rename(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _read_austen(root: Path) -> dict[str, str]:
    """Title -> text of each novel, read from janeaustenr's lazy-load database (one R character vector of lines per book)."""
    import gzip as _gzip
    import warnings
    import zlib

    try:
        import rdata
    except ImportError as err:
        raise HfdlError("offline corpus 'austen' needs the PyPI package rdata to read R data files: run `pip install rdata` (or `make setup`)") from err
    warnings.filterwarnings("ignore", module="rdata")  # "Unknown file type: assumed RDS": the lazy-load entries are bare RDS streams
    data = root / "usr/lib/R/site-library/janeaustenr/data"
    index = rdata.conversion.convert(rdata.parser.parse_data(_gzip.decompress((data / "Rdata.rdx").read_bytes())))
    blob = (data / "Rdata.rdb").read_bytes()
    books = {}
    for name, title in AUSTEN_TITLES.items():
        offset, length = (int(v) for v in index["variables"][name])
        raw = zlib.decompress(blob[offset + 4 : offset + length])  # each entry: 4-byte length + zlib stream
        lines = rdata.conversion.convert(rdata.parser.parse_data(raw, extension="rds"))
        books[title] = "\n".join(str(line) for line in lines).strip("\n")
    return books


def load_austen_books() -> dict[str, str]:
    """Jane Austen's six novels, title -> text in publication order (`AUSTEN_TITLES`), extracted once and cached as
    `hfdl_cache_dir()/corpora/austen/books.json`. `load_corpus("austen")` is these texts joined by two blank lines: the
    book boundaries cannot be recovered from that text (the books hold triple line breaks of their own)."""
    asset = CORPORA["austen"]
    out = hfdl_cache_dir() / "corpora" / "austen" / "books.json"
    if out.is_file():
        return json.loads(out.read_text(encoding="utf-8"))
    books = _read_austen(_unpacked_debs(asset, (asset.probe,)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = private_tmp(out)
    tmp.write_text(json.dumps(books, ensure_ascii=False), encoding="utf-8")
    tmp.replace(out)
    return books


def _read_kjv(root: Path) -> str:
    import subprocess

    proc = subprocess.run(
        [str(root / "usr/bin/bible"), "-f", "-p", str(root / "usr/lib"), "-d", "bible.data", "gen1:1-rev22:21"], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0 or not proc.stdout.startswith("Ge1:1 "):
        raise HfdlError(f"offline corpus 'kjv': the `bible` program failed ({proc.stderr.strip()[:160]}): reinstall bible-kjv bible-kjv-text")
    return proc.stdout


def load_corpus(name: str) -> str:
    """The text of an offline corpus (`austen`, `kjv`), extracted once and cached under `hfdl_cache_dir()/corpora`."""
    if name not in CORPORA:
        raise HfdlError(f"--corpus '{name}' is unknown: use one of {', '.join(CORPORA)}")
    asset = CORPORA[name]
    out_dir = hfdl_cache_dir() / "corpora" / name
    out = out_dir / "text.txt"
    if out.is_file():
        return out.read_text(encoding="utf-8")
    if name == "austen":
        text = _AUSTEN_JOINER.join(load_austen_books().values()) + "\n"
    else:
        text = _read_kjv(_unpacked_debs(asset, (asset.probe, "usr/bin/bible")))
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = private_tmp(out)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    (out_dir / "provenance.json").write_text(json.dumps({**asset.provenance(), "characters": len(text)}, indent=2))
    logger.info("extracted corpus %s (%d characters) to %s", name, len(text), out)
    return text
