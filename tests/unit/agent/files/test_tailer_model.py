"""The tailer against a model of one rotated log (after Vector's file_watcher model tests).

A writer appends lines with unique ids to ``app.log`` and rotates it by rename, copytruncate,
truncate-and-rewrite or delete-and-recreate; the reader scans ``app.log*`` and steps with random
byte budgets, the clock jumps, the reader restarts from the offsets it committed. Checked: no id is
ever emitted twice; each id is emitted with its exact bytes and offset; within one file the ids come
in write order; every id is emitted unless the model says it was unavoidably lost (truncated before
being read, or deleted before the reader ever saw the file or while the reader was down).
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from inferwatch.agent.files.tailer import Tailer
from inferwatch.agent.model import Checkpoint, FileId, LineBatch

from .helpers import FakeClock

MAX_LINE = 64
LONG_PAD = b"-" + b"x" * 80  # makes a line oversized


@dataclass
class Generation:
    """One physical file as the writer created it (a copytruncate copy shares its generation)."""

    ids: list[int] = field(default_factory=list)
    size: int = 0
    seen: bool = False  # a scan ran while it existed: the reader holds it from then on
    deleted: bool = False


class TailerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="tailer-model-")
        self.path = os.path.join(self.dir, "app.log")
        self.clock = FakeClock()
        self.registry: dict[FileId, int] = {}  # committed offsets
        self.uncommitted: list[tuple[FileId, int, list[int]]] = []  # spooled, not yet committed
        self.may_repeat: set[int] = set()  # emitted, uncommitted, then a restart: may come again
        self.tailer = self._new_tailer()
        self.next_id = 0
        self.rotations = 0
        self.rotated: list[tuple[str, int, bool]] = []  # path, generation, is a copy
        self.gens: list[Generation] = []
        self.gen_of: dict[int, int] = {}
        self.expected: dict[int, tuple[int, bytes, bool]] = {}  # id -> (offset, bytes, oversized)
        self.partial: tuple[int, bytes] | None = None  # id and the rest still to write
        self.emitted: list[int] = []
        self.emitted_set: set[int] = set()
        self.lost: set[int] = set()  # gone before anyone could read them: must never appear
        self.may_lose: set[int] = set()  # may be gone, depending on what the reader held
        self._create()

    # -- the writer -------------------------------------------------------------------------------

    def _new_tailer(self) -> Tailer:
        def lookup(fid: FileId) -> Checkpoint | None:
            offset = self.registry.get(fid)
            return None if offset is None else Checkpoint(offset, "", 0, 0, 0.0)

        return Tailer(MAX_LINE, 128, lookup, rotated_grace=5.0, close_idle=1e9, clock=self.clock)

    def _create(self) -> None:
        open(self.path, "wb").close()
        self.gens.append(Generation())

    @property
    def cur(self) -> Generation:
        return self.gens[-1]

    def _append(self, data: bytes) -> None:
        with open(self.path, "ab") as f:
            f.write(data)
        self.cur.size += len(data)

    def _finish_partial(self) -> None:
        if self.partial is not None:
            line_id, rest = self.partial
            self.partial = None
            self._append(rest)
            self.cur.ids.append(line_id)

    @rule(
        kinds=st.lists(st.sampled_from(["plain", "plain", "plain", "crlf", "empty", "long"]), max_size=6),
        partial=st.booleans(),
    )
    def write(self, kinds: list[str], partial: bool) -> None:
        self._finish_partial()
        for kind in [*kinds, "partial"] if partial else kinds:
            if kind == "empty":
                self._append(b"\n")
                continue
            line_id = self.next_id
            self.next_id += 1
            body = b"%06d" % line_id + (LONG_PAD if kind == "long" else b"")
            data = body + (b"\r\n" if kind == "crlf" else b"\n")
            self.expected[line_id] = (self.cur.size, body, kind == "long")
            self.gen_of[line_id] = len(self.gens) - 1
            if kind == "partial":
                cut = len(data) // 2
                self._append(data[:cut])
                self.partial = (line_id, data[cut:])
            else:
                self._append(data)
                self.cur.ids.append(line_id)

    def _next_rotated(self) -> str:
        self.rotations += 1
        return f"{self.path}.{self.rotations}"

    @rule()
    def rotate_by_rename(self) -> None:
        self._finish_partial()
        rotated = self._next_rotated()
        os.rename(self.path, rotated)
        self.rotated.append((rotated, len(self.gens) - 1, False))
        self._create()

    @rule()
    def copytruncate(self) -> None:
        self._finish_partial()
        rotated = self._next_rotated()
        shutil.copyfile(self.path, rotated)
        self.rotated.append((rotated, len(self.gens) - 1, True))
        with open(self.path, "r+b") as f:
            f.truncate(0)
        self.gens.append(Generation(seen=self.cur.seen))  # same inode: the reader still holds it

    @rule()
    def truncate_and_rewrite(self) -> None:
        self._finish_partial()
        with open(self.path, "r+b") as f:
            f.truncate(0)
        self.lost.update(i for i in self.cur.ids if i not in self.emitted_set)
        self.gens.append(Generation(seen=self.cur.seen))

    @rule()
    def delete_and_recreate(self) -> None:
        self._finish_partial()
        os.unlink(self.path)
        self.cur.deleted = True
        if not self.cur.seen:
            self.lost.update(i for i in self.cur.ids if i not in self.emitted_set)
        self._create()

    @precondition(lambda self: self.rotated)
    @rule()
    def delete_oldest_rotated(self) -> None:
        path, index, is_copy = self.rotated.pop(0)
        os.unlink(path)
        gen = self.gens[index]
        gen.deleted = True
        # A renamed file the reader has seen is held open and read to its end. A copy is only
        # opened once the original is noticed truncated, so its unread lines may be gone.
        unread = [i for i in gen.ids if i not in self.emitted_set]
        if not gen.seen:
            self.lost.update(unread)
        elif is_copy:
            self.may_lose.update(unread)

    # -- the reader -------------------------------------------------------------------------------

    def _scan(self) -> None:
        for path in sorted(glob.glob(self.path + "*")):
            self.tailer.add_path(path, 0)
        for gen in self.gens:
            if not gen.deleted:
                gen.seen = True

    def _step(self, budget: int) -> None:
        for batch in self.tailer.step(budget):
            self._take(batch)

    def _take(self, batch: LineBatch) -> None:
        got = [(off, line, False) for off, line in zip(batch.offsets, batch.lines, strict=True)]
        got += [(o.offset, o.head, True) for o in batch.oversized]
        ids: list[int] = []
        for offset, data, oversized in sorted(got):
            line_id = int(data[:6])
            ids.append(line_id)
            if line_id in self.may_repeat:
                self.may_repeat.discard(line_id)
                continue
            assert line_id not in self.emitted_set, f"line {line_id} emitted twice"
            assert line_id not in self.lost, f"line {line_id} was lost, yet emitted"
            want_offset, want, want_oversized = self.expected[line_id]
            assert (offset, oversized) == (want_offset, want_oversized)
            assert want.startswith(data) if oversized else data == want
            self.emitted.append(line_id)
            self.emitted_set.add(line_id)
        self.uncommitted.append((batch.file_id, batch.end_offset, ids))

    @rule()
    def commit(self) -> None:
        """The pipeline commits once the spool holds the lines: later than the tailer reads."""
        for fid, end, _ in self.uncommitted:
            self.registry[fid] = end
        self.uncommitted.clear()

    @rule(budget=st.integers(1, 600))
    def scan_and_step(self, budget: int) -> None:
        self._scan()
        self._step(budget)

    @rule()
    def scan_and_drain(self) -> None:
        self._scan()
        self._step(1 << 20)

    @rule(budget=st.integers(1, 600))
    def step_only(self, budget: int) -> None:
        self._step(budget)

    @rule(seconds=st.sampled_from([0.5, 3.0, 6.0]))
    def tick(self, seconds: float) -> None:
        self.clock.now += seconds

    @precondition(lambda self: self.next_id > 0)
    @rule()
    def restart(self) -> None:
        self.tailer.close()
        # read but never committed: read again from the committed offset (the spool dedupes)
        self.may_repeat.update(i for _, _, ids in self.uncommitted for i in ids)
        self.uncommitted.clear()
        for gen in self.gens:  # nobody can reach deleted files any more
            if gen.deleted:
                self.lost.update(i for i in gen.ids if i not in self.emitted_set)
            gen.seen = False
        self.tailer = self._new_tailer()

    @invariant()
    def bounded_descriptors(self) -> None:
        assert len(self.tailer.files()) <= len(self.gens) + self.rotations

    def teardown(self) -> None:
        try:
            self._finish_partial()
            self.clock.now += 100.0
            for _ in range(10_000):
                self._scan()
                batches = self.tailer.step(1 << 20)
                for batch in batches:
                    self._take(batch)
                if not batches:
                    break
            written = set(self.expected)
            missing = written - self.lost - self.may_lose - self.emitted_set
            assert not missing, f"never emitted: {sorted(missing)}"
            for gen_index in range(len(self.gens)):
                order = [i for i in self.emitted if self.gen_of[i] == gen_index]
                assert order == sorted(order), f"out of order in file {gen_index}: {order}"
        finally:
            self.tailer.close()
            shutil.rmtree(self.dir, ignore_errors=True)


# 1000 sequences keep CI near a minute; INFERWATCH_TAILER_EXAMPLES=20000 for a long hunt.
TailerModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("INFERWATCH_TAILER_EXAMPLES", "1000")),
    stateful_step_count=50,
    deadline=None,
)
test_tailer_against_a_model_of_rotated_files = TailerModel.TestCase
