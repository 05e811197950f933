"""What a demo scenario is: narration, knobs, expected bounds, and its run."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import UnknownScenarioError

if TYPE_CHECKING:
    from core.demos.runner import RunContext

KnobValue = int | str


@dataclass(frozen=True)
class Knob:
    """A setting of a scenario a trainer can change between runs."""

    name: str
    default: KnobValue
    help: str
    choices: tuple[str, ...] = ()
    minimum: int = 1
    maximum: int = 100_000

    def parse(self, raw: object) -> KnobValue:
        """``raw`` checked and converted to this knob's type."""
        if isinstance(self.default, int):
            try:
                value = int(str(raw))
            except ValueError:
                raise UnknownScenarioError(
                    f"Knob {self.name} takes a whole number, not {raw!r}"
                ) from None
            if not self.minimum <= value <= self.maximum:
                raise UnknownScenarioError(
                    f"Knob {self.name} is {value}",
                    hint=f"choose between {self.minimum} and {self.maximum}",
                )
            return value
        text = str(raw)
        if self.choices and text not in self.choices:
            raise UnknownScenarioError(
                f"Knob {self.name} cannot be {text!r}",
                hint=f"choose one of: {', '.join(self.choices)}",
            )
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default": self.default,
            "help": self.help,
            "choices": list(self.choices),
        }


_OPS: dict[str, Callable[[int, int], bool]] = {
    "==": operator.eq,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Bound:
    """An expected bound on a measured count, e.g. ``lost == 0``.

    The right side is a number or the name of another measured count.
    """

    metric: str
    op: str
    value: int | str

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value}"

    def check(self, counts: dict[str, int]) -> bool:
        if self.metric not in counts:
            return False
        right = counts.get(self.value) if isinstance(self.value, str) else self.value
        if right is None:
            return False
        return _OPS[self.op](counts[self.metric], right)


@dataclass(frozen=True)
class Step:
    """One narration step: a short title and what to say and to watch."""

    title: str
    text: str


class Scenario:
    """A scripted crash-and-recover run; subclasses fill in the class fields.

    ``run`` drives real worker processes through a :class:`RunContext`,
    announces each narration step with ``ctx.step(i)``, records measured
    counts with ``ctx.measure`` and whether the crash point was reached with
    ``ctx.crash_reached``. It never judges: the bounds do.
    """

    number: int = 0
    name: str = ""
    title: str = ""
    summary: str = ""
    crash_point: str = ""
    narration: tuple[Step, ...] = ()
    knobs: tuple[Knob, ...] = ()
    # Counts shown side by side, under these two titles (the GUI's panes).
    pairs: tuple[tuple[str, str], ...] = ()
    pair_titles: tuple[str, str] = ("read_committed", "read_uncommitted")

    def bounds(self, knobs: dict[str, KnobValue]) -> list[Bound]:
        raise NotImplementedError

    def run(self, ctx: RunContext) -> None:
        raise NotImplementedError

    def unavailable(self) -> str | None:
        """Why this scenario cannot run in this build, or None if it can."""
        return None

    def knob(self, name: str) -> Knob:
        for knob in self.knobs:
            if knob.name == name:
                return knob
        known = ", ".join(k.name for k in self.knobs)
        raise UnknownScenarioError(
            f"Scenario {self.name} has no knob {name!r}", hint=f"its knobs: {known}"
        )

    def resolve_knobs(self, given: dict[str, object]) -> dict[str, KnobValue]:
        values = {k.name: k.default for k in self.knobs}
        for name, raw in given.items():
            values[name] = self.knob(name).parse(raw)
        return values

    def describe(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "title": self.title,
            "summary": self.summary,
            "crash_point": self.crash_point,
            "narration": [{"title": s.title, "text": s.text} for s in self.narration],
            "knobs": [k.to_json() for k in self.knobs],
            "bounds": [str(b) for b in self.bounds(self.resolve_knobs({}))],
            "side_by_side": {
                "titles": list(self.pair_titles),
                "pairs": [list(p) for p in self.pairs],
            },
            "available": self.unavailable() is None,
            "unavailable_reason": self.unavailable(),
        }


# Common knobs.
RECORDS = Knob("records", 30, "records the producer writes")
PARTITIONS = Knob("partitions", 3, "partitions of the demo topic", maximum=12)
KEYS = Knob("keys", 6, "distinct keys (order is checked per key)", maximum=1000)
