"""Documents Elasticsearch rejects for good (400 ``mapper_parsing_exception``) are dead-lettered
once, also when the agent is killed -9 while their spool record is not acknowledged yet and sends
the record again after the restart: once in the local dead letter, once in the dead-letter index,
and ``dead_lettered_total`` counts each once over both lives of the agent."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.bulk_server import BulkServer
from tests.scenario.harness import (
    AgentProcess,
    LogWriter,
    assert_exactly_once,
    make_agent,
    wait_delivered,
    wait_until,
)

pytestmark = pytest.mark.scenario

DEADLINE = 60.0
DL_INDEX = "inferwatch-dead-letter"


def poison_counts(agent: AgentProcess) -> Counter[str]:
    """Prediction id -> local dead-letter entries for it."""
    return Counter(d["document"]["ml"]["prediction"]["id"] for d in agent.dead_letters() if "document" in d)


def test_a_rejected_document_is_dead_lettered_once_across_kill_9_before_its_record_is_acked(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    server.set_faults(reject_field="ml.inputs.kind", reject_value="poison")
    agent = make_agent(
        agents,
        tmp_path,
        server,
        dead_letter_index=DL_INDEX,
        batch={"max_docs": 50, "max_wait": "50ms"},
        output={"max_in_flight": 2},
    )
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    # First some records acknowledged, rejects and all: the ack saves a dead-letter mark past them.
    writer.write(30, kind="fine")
    poison = writer.write(2, kind="poison")
    wait_until(lambda: sum(poison_counts(agent).values()) >= len(poison), DEADLINE, "dead letters")
    wait_until(lambda: agent.metric("spool_pending_records") == 0, DEADLINE, "the records acknowledged")
    # Then every good item answers 429, so no record reaches a final outcome (none is
    # acknowledged) while the poison items of the same records are answered 400 and dead-lettered.
    # Fewer good items than the ship loop keeps waiting for a retry before it holds new records.
    server.set_faults(item_429_rate=1.0)
    acked_poison = len(poison)
    for i in range(8):
        writer.write(20, kind="fine")
        poison += writer.write(1 + i % 3, kind="poison")
    good = [x for x in writer.written if x not in set(poison)]
    wait_until(lambda: sum(poison_counts(agent).values()) >= len(poison), DEADLINE, "dead letters")
    assert agent.metric("dead_lettered_total") == len(poison)
    assert (agent.metric("spool_pending_records") or 0) > 0, "a record was acknowledged before the kill"
    agent.kill()

    server.set_faults(item_429_rate=0.0)
    agent.start()
    wait_delivered(server, good, DEADLINE, agent)
    wait_until(lambda: agent.metric("spool_pending_records") == 0, DEADLINE, "every record acknowledged")
    after_restart = agent.metric("dead_lettered_total")
    assert agent.stop() == 0

    assert_exactly_once(server, good)
    counts = poison_counts(agent)
    twice = sorted(k for k, n in counts.items() if n > 1)
    assert not twice, f"dead-lettered more than once: {twice}"
    assert sorted(counts) == sorted(poison)
    assert after_restart == 0, "the resent rejects were counted again in dead_lettered_total"
    indexed = Counter(
        doc["document_id"] for (index, _), doc in server.documents().items() if index == DL_INDEX
    )
    local_ids = Counter(d["_id"] for d in agent.dead_letters() if "document" in d)
    assert indexed == local_ids, "the dead-letter index holds each rejected document once"
    # The unacknowledged records really were sent again.
    assert server.stats()["rejected_400"] >= acked_poison + 2 * (len(poison) - acked_poison)
