import pytest

from vla_bench.errors import VlaBenchError
from vla_bench.registry import Registry
from vla_bench.specs import protocols, suites


def test_suites_match_libero():
    expected = {"libero_spatial": 10, "libero_object": 10, "libero_goal": 10, "libero_10": 10, "libero_90": 90}
    assert {name: suites().get(name).n_tasks for name in suites() if not suites().get(name).robust} == expected
    assert suites().get("libero_long").name == "libero_10"


def test_openvla_protocol_constants(openvla):
    assert openvla.render_size == 256 and openvla.flip_images and openvla.model_image_size == 224
    assert openvla.settle_steps == 10 and openvla.settle_action == (0, 0, 0, 0, 0, 0, -1)
    assert openvla.trials_per_task == 50 and openvla.env_seed == 0 and openvla.state == "axis_angle"
    assert openvla.max_steps == {
        "libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520, "libero_90": 400,
    }


def test_vita_protocol_constants(vita):
    assert vita.render_size == 128 and not vita.flip_images and vita.model_image_size == 200
    assert vita.settle_steps == 5 and vita.env_seed == 42 and vita.state == "euler"
    assert vita.action_chunk == 3 and vita.execution == "temporal_ensemble" and vita.ensemble_k == 0.01
    assert vita.history == 7 and set(vita.max_steps.values()) == {600}


def test_registry_suggests_closest_name():
    registry: Registry[int] = Registry("widget")
    registry.add("alpha", 1)
    registry.add("beta", 2)
    with pytest.raises(VlaBenchError, match=r"unknown widget 'alpah'; known: alpha, beta \(did you mean 'alpha'\?\)"):
        registry.get("alpah")
    with pytest.raises(ValueError):
        registry.add("alpha", 3)


def test_an_older_runs_protocol_reads_with_the_defaults_of_fields_added_since():
    """run.json files written before `robustness` existed must still compare equal (gate, report)."""
    import json

    from vla_bench.results.description import parse_protocol

    current = protocols().get("openvla")
    older = {k: v for k, v in json.loads(json.dumps(current.to_dict())).items() if k != "robustness"}
    assert parse_protocol(older) == current
    assert parse_protocol({**older, "robustness": True}).robustness is True
