"""Properties of the allocation and the guarantee on random sites and states (hypothesis).

* water-filling is max-min fair: every claim stops at its cap or at a capacity it used up
  and on which nobody rose higher;
* the allocation's targets, with the fixed loads, fit every fuse phase whenever the fixed
  loads alone do; every target is 0 or a whole number of amperes from 6 to the connector's
  full limit;
* the guarantee: if no envelope is over before the plan, none is over once its writes are
  out (each counted at the higher of old and new), whatever the targets asked for.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from charged.balancer.allocate import allocate
from charged.balancer.envelope import counted_phases, worst_case
from charged.balancer.model import (
    BalancerMemory,
    BalancerParams,
    ChargerSpec,
    ConnectorKey,
    ConnectorState,
    Fuse,
    Reason,
    Site,
    all_rotations,
)
from charged.balancer.plan import plan
from charged.balancer.waterfill import Claim, water_fill

NOW = 1_000_000.0
PARAMS = BalancerParams()


@st.composite
def claims_and_capacities(draw: st.DrawFn) -> tuple[list[float], list[Claim]]:
    n_cap = draw(st.integers(1, 5))
    capacity = draw(st.lists(st.floats(0, 100), min_size=n_cap, max_size=n_cap))
    claims = draw(
        st.lists(
            st.builds(
                Claim,
                st.lists(st.integers(0, n_cap - 1), min_size=1, max_size=3, unique=True).map(tuple),
                st.floats(0, 60),
                st.sampled_from([1.0, 1.0 / 3.0]),
            ),
            max_size=12,
        )
    )
    return capacity, claims


@given(claims_and_capacities())
def test_water_filling_is_max_min_fair(case: tuple[list[float], list[Claim]]) -> None:
    capacity, claims = case
    shares = water_fill(capacity, claims)
    used = [0.0] * len(capacity)
    for claim, share in zip(claims, shares, strict=True):
        assert -1e-9 <= share.level <= claim.cap + 1e-6
        for r in claim.capacities:
            used[r] += share.level * claim.rate
    for r, amps in enumerate(capacity):
        assert used[r] <= amps + 1e-6
    for claim, share in zip(claims, shares, strict=True):
        if share.bottleneck is None:
            assert abs(share.level - claim.cap) < 1e-6
            continue
        r = share.bottleneck
        assert r in claim.capacities
        assert used[r] >= capacity[r] - 1e-6  # used up
        rivals = [s.level for c, s in zip(claims, shares, strict=True) if r in c.capacities]
        assert share.level >= max(rivals) - 1e-6  # nobody on it rose higher


@st.composite
def sites_and_states(draw: st.DrawFn) -> tuple[Site, list[ConnectorState]]:
    n = draw(st.integers(1, 8))
    rotations = all_rotations()
    specs = tuple(
        ChargerSpec(
            f"C{i}",
            rotation=draw(st.sampled_from(rotations)),
            installation_current=draw(st.sampled_from([16.0, 20.0, 32.0])),
        )
        for i in range(n)
    )
    ids = [s.id for s in specs]
    split = draw(st.integers(0, n))
    limit = st.floats(6, 80).map(lambda a: round(a, 1))
    child = Fuse("row", (draw(limit), draw(limit), draw(limit)), chargers=tuple(ids[split:]))
    root = Fuse(
        "main",
        (draw(limit), draw(limit), draw(limit)),
        children=(child,),
        chargers=tuple(ids[:split]),
    )
    building = draw(
        st.sampled_from([(), (("main", (5.0, 0.0, 12.0)),), (("row", (3.0, 3.0, 3.0)),)])
    )
    site = Site(root, specs, margin=draw(st.sampled_from([0.0, 2.0])))
    if building:  # the building's metered load, carried up the tree as the runtime does
        site = site.with_other_load(dict(building))
    states: list[ConnectorState] = []
    limits = st.sampled_from([0.0, 6.0, 10.0, 16.0, 32.0])
    for spec in specs:
        for key in spec.connector_keys():
            kind = draw(st.sampled_from(["car", "car", "idle", "offline", "pinned", "unwritable"]))
            lim = min(draw(limits), spec.connector_max)
            terminals = draw(st.sampled_from([None, frozenset({0}), frozenset({0, 1, 2})]))
            states.append(
                ConnectorState(
                    key,
                    online=kind != "offline",
                    plugged=kind != "idle",
                    wants_current=kind in ("car", "pinned", "unwritable"),
                    terminals=terminals if kind != "idle" else None,
                    limit=draw(st.sampled_from([lim, lim, lim, None])),
                    # a write sent and not read back; a decrease confirmed a moment ago
                    pending=draw(st.sampled_from([None, None, 0.0, 16.0, spec.connector_max])),
                    previous_limit=draw(st.sampled_from([None, 32.0, 6.0])),
                    limit_since=draw(st.sampled_from([None, NOW - 10, NOW - 300])),
                    measured=(draw(st.sampled_from([0.0, 5.0, 15.5])), 0.0, 0.0),
                    measured_at=draw(st.sampled_from([None, NOW - 5])),
                    pinned=lim if kind == "pinned" else None,
                    writable=kind != "unwritable",
                    car_max=draw(st.sampled_from([None, 8.0, 14.0])),
                )
            )
    return site, states


def _fixed_load(site: Site, states: list[ConnectorState], key: ConnectorKey) -> bool:
    state = next(s for s in states if s.key == key)
    # (a limit never read is nothing to change from yet: counted at its worst case)
    return not state.online or state.pinned is not None or not state.writable or state.limit is None


def _sums(
    site: Site, per_connector: dict[ConnectorKey, float], states: list[ConnectorState]
) -> dict[tuple[str, int], float]:
    by_key = {s.key: s for s in states}
    out: dict[tuple[str, int], float] = {}
    for spec in site.chargers:
        for key in spec.connector_keys():
            phases = counted_phases(by_key.get(key), spec)
            for fuse in site.fuses_of(spec.id):
                for p in phases:
                    out[(fuse.name, p)] = out.get((fuse.name, p), 0.0) + per_connector[key]
    return out


@settings(max_examples=300, deadline=None)
@given(sites_and_states())
def test_targets_fit_every_fuse_phase_when_the_fixed_loads_do(
    case: tuple[Site, list[ConnectorState]],
) -> None:
    site, states = case
    result = allocate(site, states, NOW, PARAMS, BalancerMemory())
    by_key = {s.key: s for s in states}
    fixed = {
        key: (
            worst_case(by_key[key], site.charger(key[0]), NOW, settle_s=PARAMS.settle_s)
            if _fixed_load(site, states, key)
            else 0.0
        )
        for key in site.connector_keys()
    }
    fixed_sums = _sums(site, fixed, states)
    capacity = {(f.name, p): site.capacity(f)[p] for f in site.fuses() for p in range(3)}
    if any(amps > capacity[fp] + 1e-6 for fp, amps in fixed_sums.items()):
        return  # infeasible before we start: nothing to promise
    load = {
        key: fixed[key] if _fixed_load(site, states, key) else result.targets[key]
        for key in site.connector_keys()
    }
    for fp, amps in _sums(site, load, states).items():
        assert amps <= capacity[fp] + 1e-6, (fp, amps, result.decisions)
    for key, target in result.targets.items():
        if _fixed_load(site, states, key):
            continue
        spec = site.charger(key[0])
        assert spec is not None
        assert target == int(target)
        assert target == 0 or PARAMS.min_current <= target <= spec.connector_max


@settings(max_examples=300, deadline=None)
@given(sites_and_states())
def test_a_car_is_paused_only_where_the_floor_does_not_fit(
    case: tuple[Site, list[ConnectorState]],
) -> None:
    """Admission at the floor is maximal: every paused car has a fuse phase that the fixed
    loads and the other cars' floors leave under 6 A.  (The allocation admits the cars of
    loose fuse phases at once and takes turns only under tight ones; this is what either
    way must give.)"""
    site, states = case
    result = allocate(site, states, NOW, PARAMS, BalancerMemory())
    by_key = {s.key: s for s in states}
    floor = {
        key: (
            worst_case(by_key.get(key), site.charger(key[0]), NOW, settle_s=PARAMS.settle_s)
            if _fixed_load(site, states, key)
            else (0.0 if result.decisions[key].reason is Reason.PAUSED_FLOOR else None)
        )
        for key in site.connector_keys()
    }
    wanting = {k for k, s in by_key.items() if not _fixed_load(site, states, k) and s.wants_current}
    load = {
        k: (PARAMS.min_current if k in wanting and v is None else (v or 0.0))
        for k, v in floor.items()
    }
    room = {(f.name, p): site.capacity(f)[p] for f in site.fuses() for p in range(3)}
    for fp, amps in _sums(site, load, states).items():
        room[fp] -= amps
    for key in result.paused:
        if result.decisions[key].reason is not Reason.PAUSED_FLOOR:
            continue  # (held at 0 by hysteresis: not the floor's doing)
        spec = site.charger(key[0])
        assert spec is not None
        phases = counted_phases(by_key[key], spec)
        short = [
            (f.name, p)
            for f in site.fuses_of(spec.id)
            for p in phases
            if room[(f.name, p)] < PARAMS.min_current - 1e-6
        ]
        assert short, (key, room)


@settings(max_examples=300, deadline=None)
@given(sites_and_states(), st.data())
def test_the_plan_never_raises_an_envelope_over_a_fuse(
    case: tuple[Site, list[ConnectorState]], data: st.DataObject
) -> None:
    site, states = case
    targets = {
        key: data.draw(st.sampled_from([0.0, 6.0, 12.5, 20.0, 32.0]))
        for key in site.connector_keys()
    }
    before = plan(site, states, targets, NOW)
    # every write out, unconfirmed: each counts at the higher of old and new
    sent = {w.key: w.limit for w in before.writes}
    after = [s if s.key not in sent else _pending(s, sent[s.key]) for s in states]
    again = plan(site, after, {}, NOW)
    over = set(before.over)
    for fuse in site.fuses():
        for p in range(3):
            was, now = before.envelope[fuse.name][p], again.envelope[fuse.name][p]
            assert abs(was - now) < 1e-6  # the plan's envelope is what the writes make it
            if (fuse.name, p) in over:
                # over already (offline at full, a person's limit): it must not grow
                first = plan(site, states, {}, NOW).envelope[fuse.name][p]
                assert now <= first + 1e-6, (fuse.name, p, before.writes)
            else:
                assert now <= site.capacity(fuse)[p] + 1e-6, (fuse.name, p, before.writes)


def _pending(state: ConnectorState, value: float) -> ConnectorState:
    from dataclasses import replace

    return replace(state, pending=value)
