"""free_last_xml drops the parsed model MuJoCo keeps after an XML load (what mj_saveLastXML writes)."""

from __future__ import annotations

import pytest

from vla_bench.envs.libero_env import free_last_xml

mujoco = pytest.importorskip("mujoco")

XML = '<mujoco><worldbody><geom size="1"/></worldbody></mujoco>'


def test_the_last_xml_is_gone_and_the_model_still_works(tmp_path):
    model = mujoco.MjModel.from_xml_string(XML)
    mujoco.mj_saveLastXML(str(tmp_path / "kept.xml"), model)  # kept after the load
    free_last_xml()
    with pytest.raises(mujoco.FatalError, match="No XML model loaded"):
        mujoco.mj_saveLastXML(str(tmp_path / "gone.xml"), model)
    data = mujoco.MjData(model)
    mujoco.mj_step(model, data)  # the compiled model is untouched
    assert data.time > 0


def test_scene_builds_free_the_last_xml_right_after_the_compile_and_restore_robosuite(tmp_path):
    pytest.importorskip("robosuite")
    from robosuite.utils.binding_utils import MjRenderContext, MjSim

    from vla_bench.envs.libero_env import build_memory_released

    originals = (MjSim.__dict__["from_xml_string"], MjRenderContext.__dict__["_set_mujoco_context_and_buffers"])
    with build_memory_released(render_size=256):
        sim = MjSim.from_xml_string(XML)
        with pytest.raises(mujoco.FatalError, match="No XML model loaded"):
            mujoco.mj_saveLastXML(str(tmp_path / "gone.xml"), sim.model._model)
    assert (MjSim.__dict__["from_xml_string"], MjRenderContext.__dict__["_set_mujoco_context_and_buffers"]) == originals
    sim.step()  # the compiled model is untouched
    assert sim.data.time > 0
