"""docs/core-spec.md is the core's written spec: its tables of profile fields and of the bus's memory
map must be the code's (spikeforge.core.image, spikeforge.core.memory_map), field for field and in
order, or someone building a core or a host from the text puts values at the wrong addresses."""

import re
from pathlib import Path

from spikeforge.core.image import PROFILE_FIELDS, STDP_FIELDS
from spikeforge.core.memory_map import ControlReg, NeuronStateField, Region

SPEC = Path(__file__).resolve().parents[1] / "docs" / "core-spec.md"


def _table_after(heading: str) -> list[list[str]]:
    """The rows (cells, stripped) of the first Markdown table after the line starting with ``heading``."""
    lines = SPEC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    rows = []
    for line in lines[first + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_profile_table_lists_the_fields_in_bus_order_with_their_numbers():
    rows = _table_after("**Neuron parameter profiles**")
    listed = []
    for cells in rows:
        names = re.findall(r"`(\w+)`", cells[0])
        numbers = [int(n) for n in re.search(r"\(([\d, ]+)\)", cells[0]).group(1).split(",")]
        assert len(names) == len(numbers), cells[0]
        listed += list(zip(numbers, names))
    assert listed == list(enumerate(PROFILE_FIELDS))


def test_the_memory_map_table_is_the_code():
    rows = {cells[0]: cells for cells in _table_after("On the hardware every field is a 32-bit word")}
    assert {name: int(cells[1]) for name, cells in rows.items()} == {r.name: int(r) for r in Region}
    control = dict((int(n), name) for n, name in re.findall(r"(\d+) ([A-Z_]+)", rows["CONTROL"][2]))
    assert control == {int(r): r.name for r in ControlReg}
    assert re.search(r"\((.*)\)", rows["STDP"][2]).group(1).split(", ") == list(STDP_FIELDS)
    state = dict((int(n), name) for n, name in re.findall(r"(\d+) (\w+)", rows["NEURON_STATE"][2]))
    assert state == {int(f): f.name.lower() for f in NeuronStateField}
    profile = re.findall(r"(\d+) (\w+)", rows["PROFILE"][2])
    assert profile == [("0", PROFILE_FIELDS[0]), (str(len(PROFILE_FIELDS) - 1), PROFILE_FIELDS[-1])]
