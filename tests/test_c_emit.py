"""Arena planning, C literals and provenance stamps."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from export.c_emit import Buffer, c_array_body, plan_arena, stamp


@st.composite
def buffer_sets(draw):
    n = draw(st.integers(1, 12))
    out = []
    for i in range(n):
        first = draw(st.integers(0, 20))
        out.append(Buffer(f"t{i}", draw(st.integers(0, 300)), first,
                          first + draw(st.integers(0, 6)), draw(st.sampled_from([1, 2, 4, 8]))))
    return out


@given(buffer_sets())
def test_live_buffers_never_overlap(bufs):
    plan = plan_arena(bufs)
    for b in bufs:
        assert plan.offsets[b.name] % b.align == 0
        assert plan.offsets[b.name] + b.size <= plan.size
    for a in bufs:
        for b in bufs:
            if a.name < b.name and a.size and b.size and not (a.last < b.first or b.last < a.first):
                oa, ob = plan.offsets[a.name], plan.offsets[b.name]
                assert oa + a.size <= ob or ob + b.size <= oa
    peak = max(sum(b.size for b in bufs if b.first <= t <= b.last) for t in range(30))
    assert plan.size >= peak


def test_disjoint_lifetimes_share_memory():
    plan = plan_arena([Buffer("a", 100, 0, 1), Buffer("b", 100, 2, 3), Buffer("c", 8, 1, 2)])
    assert plan.offsets["a"] == plan.offsets["b"] == 0 and plan.size == 108


def test_c_array_body_int32_min_literal():
    body = c_array_body(np.array([-(2 ** 31), 5, -7], dtype=np.int32))
    assert body.strip() == "(-2147483647 - 1), 5, -7,"


def test_stamp_is_deterministic_and_has_no_time():
    a = stamp("ab12", ["kws-export", "generate", "m.pt", "-o", "out dir"])
    assert a == stamp("ab12", ["kws-export", "generate", "m.pt", "-o", "out dir"])
    assert "'out dir'" in a and "sha256 ab12" in a and "kws-export 0.1.0" in a
