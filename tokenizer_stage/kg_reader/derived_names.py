"""Readable names derived from entity and relation ids (URIs, NELL concepts, Freebase paths, WordNet
lemmas), or None for opaque ids (Freebase MIDs, Wikidata ids, WordNet offsets)."""

from __future__ import annotations

import re
from urllib.parse import unquote

_MID = re.compile(r"^/[mg]/[0-9A-Za-z_]+$")  # Freebase machine ids
_DOTTED_MID = re.compile(r"^[mg]\.[0-9A-Za-z_]+$")  # the same with '/' -> '.' (image folders)
_WIKIDATA_ID = re.compile(r"^[QPL]\d+$")  # items, properties, lexemes
_WORDNET_OFFSET = re.compile(r"^[nvasr]\d{8}$")  # ImageNet-style wnid
_WORDNET_LEMMA = re.compile(r"^(.+)\.[nvasr]\.\d+$")  # dog.n.01
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Resource names may contain '/', so take everything after these path markers.
_URI_NAME = re.compile(r"/(?:resource|ontology|property|entity|wiki)/(.+)$")


def _clean_name(text: str) -> str | None:
    text = " ".join(text.replace("_", " ").split())
    if not any(ch.isalpha() for ch in text):
        return None  # ids without letters (offsets, numbers) carry no name
    return text


def derive_name(identifier: str) -> str | None:
    """Readable name from an id, or None when the id is opaque (MIDs, Q-ids, offsets)."""
    s = identifier.strip()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1].strip()
    if not s or _MID.match(s) or _DOTTED_MID.match(s) or _WIKIDATA_ID.match(s) or _WORDNET_OFFSET.match(s):
        return None
    if _URI.match(s):
        if "#" in s:
            tail = s.rsplit("#", 1)[1]
        else:
            m = _URI_NAME.search(s.rstrip("/"))
            tail = m.group(1) if m else s.rstrip("/").rsplit("/", 1)[-1]
        tail = unquote(tail)
        if _WIKIDATA_ID.match(tail):
            return None
        return _clean_name(tail)
    if s.startswith("concept:"):  # NELL concept:type:name / concept:relation
        parts = s.split(":")[1:]
        if len(parts) >= 2:
            parts = parts[1:]  # drop the type segment
        return _clean_name(" ".join(parts))
    if s.startswith("concept_"):  # InGram NELL: type boundary unknown, keep it
        return _clean_name(s[len("concept_"):])
    if s.startswith("/"):  # Freebase relation path
        return _clean_name(s.replace("/", " "))
    m = _WORDNET_LEMMA.match(s)
    if m:
        return _clean_name(m.group(1))
    return _clean_name(s)
