"""Patient keys of an Arrow column are the keys of its values one by one."""

from __future__ import annotations

import pyarrow as pa

from ingest import pseudonymize
from ingest.pseudonymize import Pseudonymizer


def test_a_columns_keys_are_each_values_key(monkeypatch) -> None:  # noqa: ANN001
    """Nulls, blanks, padded ids and repeats; across chunks, and after the remembered ids are dropped."""
    monkeypatch.setattr(pseudonymize, "_REMEMBERED", 3)
    pseudo = Pseudonymizer(b"a test key, not for production use")
    chunks = [["p1", None, " p1 ", "", "p2", "p1"], ["p3", "p2", "p4", "p5", "  ", None], ["p1", "p6"]]
    for values in chunks:
        for system in ("fhir", "north"):
            got = pseudo.column(system, pa.chunked_array([pa.array(values[:2], pa.string()), values[2:]]))
            assert got.to_pylist() == [pseudo.key(system, v) for v in values]
    assert pseudo.column("fhir", pa.array(["p1"]))[0].as_py() != pseudo.column("north", pa.array(["p1"]))[0].as_py()
    assert None not in [pseudo.key("fhir", v) for v in ("p1", "p2", " p1 ")]
