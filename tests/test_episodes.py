import pytest

from vla_bench.episodes import make_plan, parse_int_list
from vla_bench.errors import VlaBenchError


def test_default_plan_is_the_protocol():
    plan = make_plan(suite="libero_spatial", protocol="openvla")
    episodes = plan.episodes()
    assert len(episodes) == 500 and plan.deviations == {}
    assert episodes[0].key == "libero_spatial/0/0" and episodes[-1].key == "libero_spatial/9/49"
    assert {e.max_steps for e in episodes} == {220} and {e.seed for e in episodes} == {0}


def test_overrides_are_recorded_as_deviations():
    plan = make_plan(suite="libero_object,libero_10", protocol="vita-vla", tasks="0,3-4", trials=2, max_steps=20, seed=7)
    assert [e.key for e in plan.episodes()][:3] == ["libero_object/0/0", "libero_object/0/1", "libero_object/3/0"]
    assert len(plan.episodes()) == 2 * 3 * 2
    assert plan.deviations["tasks"] == {"protocol": "all", "run": [0, 3, 4]}
    assert plan.deviations["trials_per_task"] == {"protocol": 50, "run": 2}
    assert plan.deviations["max_steps"]["protocol"] == {"libero_object": 600, "libero_10": 600}
    assert plan.deviations["env_seed"] == {"protocol": 42, "run": 7}


def test_episode_list_does_not_depend_on_anything_but_the_selection():
    a = make_plan(suite="libero_goal", protocol="openvla", trials=3).episodes()
    b = make_plan(suite="libero_goal", protocol="openvla", trials=3).episodes()
    assert a == b and a == sorted(a)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"suite": "libero_spatal"}, "did you mean 'libero_spatial'"),
        ({"suite": "libero_spatial", "protocol": "openvl"}, "unknown protocol"),
        ({"suite": "libero_spatial", "tasks": "10"}, "task id 10 out of range for libero_spatial"),
        ({"suite": "libero_spatial", "trials": 51}, "between 1 and 50"),
        ({"suite": "libero_spatial", "trials": 0}, "between 1 and 50"),
        ({"suite": "libero_spatial", "max_steps": 0}, "at least 1"),
        ({"suite": "libero_spatial", "tasks": "a"}, "cannot parse"),
        ({"suite": "libero_spatial,libero_spatial"}, "twice"),
    ],
)
def test_bad_selection(kwargs, message):
    kwargs = {"protocol": "openvla", **kwargs}
    with pytest.raises(VlaBenchError, match=message):
        make_plan(**kwargs)


def test_parse_int_list():
    assert parse_int_list("0, 3,5-7", "x") == (0, 3, 5, 6, 7)
    with pytest.raises(VlaBenchError):
        parse_int_list("3-1", "x")
