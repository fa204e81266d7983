"""Make the bundled document collection: the Python standard library's own docstrings.

Writes ``embeddings/data/stdlib_docs.jsonl.gz``: one JSON object per line, ``{"id", "title",
"text", "group"}``, one document per module, class, function or method docstring of a fixed list
of standard-library modules (at least ``MIN_CHARS`` characters after ``inspect.cleandoc``), the
group being the module's area, after the chapters of the Python Library Reference. Each group
keeps at most ``PER_GROUP`` documents (the longest first, then in name order), so no area
dominates. The docstrings are Python's, under the PSF License (``stdlib_docs.LICENSE``).

    python scripts/make_docs_corpus.py            # writes the file, prints counts per group

The output depends only on the Python version that runs it (the LICENSE file names the one used).
"""

from __future__ import annotations

import gzip
import importlib
import inspect
import io
import json
import sys
import warnings
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "embeddings" / "data" / "stdlib_docs.jsonl.gz"
MIN_CHARS = 80
PER_GROUP = 240

GROUPS = {
    "text processing": "string re difflib textwrap unicodedata stringprep readline rlcompleter",
    "data types and functional tools": "datetime zoneinfo calendar collections collections.abc heapq bisect "
    "array weakref types copy pprint reprlib enum graphlib itertools functools operator",
    "numbers and maths": "numbers math cmath decimal fractions random statistics",
    "files and directories": "pathlib os.path stat filecmp tempfile glob fnmatch linecache shutil",
    "persistence and file formats": "pickle copyreg shelve marshal dbm sqlite3 csv configparser tomllib "
    "netrc plistlib",
    "compression, archives and hashing": "zlib gzip bz2 lzma zipfile tarfile hashlib hmac secrets",
    "operating system": "os io time argparse getopt logging logging.config logging.handlers getpass "
    "platform errno ctypes",
    "concurrency": "threading multiprocessing multiprocessing.pool concurrent.futures subprocess "
    "sched queue contextvars",
    "asyncio": "asyncio asyncio.events asyncio.tasks asyncio.streams asyncio.queues asyncio.locks "
    "asyncio.base_events asyncio.futures asyncio.subprocess asyncio.transports asyncio.protocols",
    "networking and signals": "socket ssl select selectors signal mmap",
    "internet data": "email email.message email.parser email.generator email.policy email.headerregistry "
    "email.utils json mailbox mimetypes base64 binascii quopri",
    "markup": "html html.parser xml.dom.minidom xml.dom.pulldom xml.sax xml.sax.handler "
    "xml.sax.saxutils xml.etree.ElementTree xml.parsers.expat",
    "internet protocols": "webbrowser wsgiref.simple_server wsgiref.util urllib.request urllib.parse "
    "urllib.error urllib.robotparser http http.client http.server http.cookies http.cookiejar ftplib "
    "poplib imaplib smtplib uuid socketserver xmlrpc.client xmlrpc.server ipaddress",
    "development tools": "typing pydoc doctest unittest unittest.mock",
    "debugging and profiling": "bdb faulthandler pdb timeit trace tracemalloc cProfile profile pstats",
    "python runtime": "sys sysconfig builtins warnings dataclasses contextlib abc atexit traceback gc "
    "inspect site code codeop",
    "language services": "ast symtable token keyword tokenize tabnanny pyclbr py_compile compileall dis "
    "pickletools importlib importlib.resources importlib.metadata pkgutil modulefinder runpy zipimport",
}


def _members(module):
    """(qualified name, object) for the module, its public classes and functions, and their methods."""
    name = module.__name__
    yield name, module
    for attr, obj in sorted(vars(module).items()):
        owner = getattr(obj, "__module__", None)
        if attr.startswith("_") or not (owner in (name, None, "posix", "nt") or str(owner).startswith("_")):
            continue
        if inspect.isclass(obj):
            yield f"{name}.{attr}", obj
            for meth, member in sorted(vars(obj).items()):
                if meth.startswith("_"):
                    continue
                if inspect.isfunction(member) or inspect.ismethoddescriptor(member):
                    yield f"{name}.{attr}.{meth}", member
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
            yield f"{name}.{attr}", obj


def collect() -> list[dict]:
    """Every document, grouped and capped (see the module docstring)."""
    by_group: dict[str, list[dict]] = defaultdict(list)
    seen_texts: set[str] = set()
    for group, names in GROUPS.items():
        for module_name in names.split():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    module = importlib.import_module(module_name)
                except ImportError as exc:  # e.g. readline on some builds
                    print(f"skipped {module_name}: {exc}", file=sys.stderr)
                    continue
            for qualname, obj in _members(module):
                doc = obj.__doc__ if isinstance(getattr(obj, "__doc__", None), str) else None
                if not doc:
                    continue
                text = inspect.cleandoc(doc).strip()
                if len(text) < MIN_CHARS or text in seen_texts:  # inherited copies appear once
                    continue
                seen_texts.add(text)
                by_group[group].append({"id": qualname, "title": qualname, "text": text, "group": group})
    docs = []
    for group in GROUPS:
        found = sorted(by_group[group], key=lambda d: (-len(d["text"]), d["id"]))[:PER_GROUP]
        docs += sorted(found, key=lambda d: d["id"])
    return docs


def main() -> None:
    docs = collect()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
        for doc in docs:
            gz.write((json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8"))
    OUT.write_bytes(buf.getvalue())
    counts = defaultdict(int)
    for doc in docs:
        counts[doc["group"]] += 1
    for group, n in counts.items():
        print(f"{n:5d}  {group}")
    lengths = sorted(len(d["text"]) for d in docs)
    print(
        f"{len(docs)} documents in {len(counts)} groups, {OUT.stat().st_size:,} bytes; characters: "
        f"median {lengths[len(lengths) // 2]}, 90th {lengths[int(len(lengths) * 0.9)]}, max {lengths[-1]}, "
        f"over 1,000: {sum(n > 1000 for n in lengths)}, over 8,000: {sum(n > 8000 for n in lengths)}"
    )


if __name__ == "__main__":
    main()
