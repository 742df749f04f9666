"""Dead letters as Elasticsearch documents, for the optional ``agent.dead_letter_index``.

The local ``dead-letter.ndjson`` (``agent.deadletter``) is the record that counts; the index is a
convenience for looking at rejects in Kibana. The document is the local entry without ``_id`` (a
metadata field Elasticsearch refuses inside a document), with the rejected document's id as
``document_id`` and its target index as ``index``. Ids are deterministic, so a replay answers 409.
"""

from __future__ import annotations

from dataclasses import replace

import orjson

from inferwatch.agent.deadletter import DeadLetterItem, entry
from inferwatch.core.contract import document_id


def dead_letter_id(key: str) -> str:
    """The document id rule (base64url of blake2b-16) applied to ``dead-letter:<key>``."""
    return document_id(f"dead-letter:{key}")


def dead_letter_document(item: DeadLetterItem, ts: float) -> bytes:
    """The index document of ``item`` dead-lettered at ``ts`` (see the module docstring)."""
    doc = entry(replace(item, doc_id=None), ts)
    if item.doc_id is not None:
        doc["document_id"] = item.doc_id
    if isinstance(doc.get("document"), dict):
        # Keep the rejected document as text: as an object it would hit the very mapping
        # conflict that rejected it.
        doc["document"] = orjson.dumps(doc["document"]).decode()
    return orjson.dumps(doc)
