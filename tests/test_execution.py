"""Execution wrappers: temporal ensembling, open-loop chunks, gripper conventions, per-episode state."""

from __future__ import annotations

import numpy as np
import pytest

from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode
from vla_bench.policies.execution import ChunkPredictor, ExecutionPolicy, ensemble_weights, gripper_to_env


class ScriptedPredictor(ChunkPredictor):
    """Returns chunk[key][n] on the n-th query of each episode and records the queries."""

    chunk = 3

    def __init__(self, chunks: dict[str, np.ndarray]) -> None:
        self.chunks = chunks
        self.queries: list[tuple[str, int]] = []
        self.counts: dict[str, int] = {}

    def start_episode(self, episode: Episode) -> None:
        self.counts[episode.key] = 0

    def predict(self, observations):
        out = []
        for obs in observations:
            self.queries.append((obs.episode, obs.step))
            out.append(self.chunks[obs.episode][self.counts[obs.episode]])
            self.counts[obs.episode] += 1
        return np.stack(out)


def _episode(i: int) -> Episode:
    return Episode("libero_10", 0, i, 42, 50)


def _obs(episode: Episode, step: int) -> Observation:
    return Observation(images={}, state=np.zeros(8), instruction="", episode=episode.key, step=step)


def _chunks(rng: np.random.Generator, n: int) -> np.ndarray:
    chunks = rng.uniform(-0.5, 0.5, size=(n, 3, 7))
    chunks[..., 6] = rng.uniform(0, 1, size=(n, 3))
    return chunks


def test_temporal_ensembling_matches_a_hand_computed_example():
    # Step t's action averages chunk_s[t - s] over the chunks s that cover t, oldest weighted most.
    chunks = np.zeros((4, 3, 7))
    chunks[0, :, 0] = [0.1, 0.2, 0.3]  # predicted at step 0 for steps 0, 1, 2
    chunks[1, :, 0] = [0.4, 0.5, 0.6]  # at step 1 for steps 1, 2, 3
    chunks[2, :, 0] = [0.7, 0.8, 0.9]  # at step 2 for steps 2, 3, 4
    chunks[3, :, 0] = [-0.1, -0.2, -0.3]
    chunks[:, :, 6] = [[0.9, 0.9, 0.2], [0.1, 0.1, 0.1], [0.3, 0.3, 0.3], [0.0, 0.0, 0.0]]
    episode = _episode(0)
    policy = ExecutionPolicy(ScriptedPredictor({episode.key: chunks}), "temporal_ensemble", "threshold", ensemble_k=0.01)
    policy.start_episode(episode)
    actions = [policy.infer([_obs(episode, t)]).actions[0] for t in range(4)]

    w2 = np.exp(-0.01 * np.arange(2)) / np.exp(-0.01 * np.arange(2)).sum()
    w3 = np.exp(-0.01 * np.arange(3)) / np.exp(-0.01 * np.arange(3)).sum()
    assert actions[0][0] == pytest.approx(0.1)
    assert actions[1][0] == pytest.approx(w2 @ [0.2, 0.4])
    assert actions[2][0] == pytest.approx(w3 @ [0.3, 0.5, 0.7])
    assert actions[3][0] == pytest.approx(w3 @ [0.6, 0.8, -0.1])  # chunk 0 no longer covers step 3
    # By hand with k = 0.01: weights (1, e^-0.01, e^-0.02) / sum = (0.33669, 0.33334, 0.32997)
    assert actions[2][0] == pytest.approx(0.33669 * 0.3 + 0.33334 * 0.5 + 0.32997 * 0.7, abs=1e-4)
    # Gripper: ensembled probability, then > 0.5 -> close (+1) else open (-1).
    assert actions[0][6] == 1.0  # 0.9
    assert actions[1][6] == 1.0  # mean(0.9, 0.1) weighted towards the older 0.9
    assert actions[2][6] == -1.0  # mean(0.2, 0.1, 0.3)


def test_ensemble_weights_favour_the_oldest_prediction():
    w = ensemble_weights(3, 0.01)
    assert w.sum() == pytest.approx(1.0)
    assert w[0] > w[1] > w[2]
    assert ensemble_weights(1, 0.01) == pytest.approx([1.0])


def test_open_loop_chunks_query_every_n_steps_and_read_images_only_then():
    rng = np.random.default_rng(0)
    episode = _episode(0)
    predictor = ScriptedPredictor({episode.key: _chunks(rng, 4)})
    policy = ExecutionPolicy(predictor, "chunk", "threshold", steps=2)
    policy.start_episode(episode)
    reads = [policy.uses_images]  # the first observation of an episode; then what infer says about the next
    actions = []
    for t in range(6):
        output = policy.infer([_obs(episode, t)])
        reads.append(output.reads_next[0])
        actions.append(output.actions[0])
    assert reads == [True, False, True, False, True, False, True]
    assert [s for _, s in predictor.queries] == [0, 2, 4]
    chunks = predictor.chunks[episode.key]
    np.testing.assert_allclose(actions[1][:6], chunks[0, 1, :6])
    np.testing.assert_allclose(actions[2][:6], chunks[1, 0, :6])


def test_single_mode_executes_the_first_action_of_each_chunk():
    rng = np.random.default_rng(1)
    episode = _episode(0)
    predictor = ScriptedPredictor({episode.key: _chunks(rng, 3)})
    policy = ExecutionPolicy(predictor, "single", "binarize")
    policy.start_episode(episode)
    for t in range(3):
        action = policy.infer([_obs(episode, t)]).actions[0]
        np.testing.assert_allclose(action[:6], predictor.chunks[episode.key][t, 0, :6])
        assert action[6] == -np.sign(2 * predictor.chunks[episode.key][t, 0, 6] - 1)


def test_gripper_conventions():
    values = np.array([0.0, 0.49, 0.5, 0.51, 1.0])
    np.testing.assert_array_equal(gripper_to_env(values, "threshold"), [-1, -1, -1, 1, 1])
    np.testing.assert_array_equal(gripper_to_env(values, "binarize"), [1, 1, 0, -1, -1])


def test_episodes_in_one_batch_keep_separate_state_and_reset_clears_it():
    rng = np.random.default_rng(2)
    a, b = _episode(0), _episode(1)
    chunks = {a.key: _chunks(rng, 6), b.key: _chunks(rng, 6)}
    batched = ExecutionPolicy(ScriptedPredictor(chunks), "temporal_ensemble", "threshold")
    alone = {key: ExecutionPolicy(ScriptedPredictor(chunks), "temporal_ensemble", "threshold") for key in chunks}
    for policy in (batched, *alone.values()):
        policy.start_episode(a)
        policy.start_episode(b)
    # b starts two steps later than a: a batch mixes episodes at different steps.
    schedule = [[(a, 0)], [(a, 1)], [(a, 2), (b, 0)], [(b, 1), (a, 3)], [(a, 4), (b, 2)]]
    for group in schedule:
        together = batched.infer([_obs(e, t) for e, t in group]).actions
        for row, (e, t) in zip(together, group):
            np.testing.assert_allclose(row, alone[e.key].infer([_obs(e, t)]).actions[0])
    batched.start_episode(a)
    assert batched.predictor.counts[a.key] == 0 and not batched.states[a.key].chunks


def test_state_of_an_episode_is_dropped_when_it_ends():
    rng = np.random.default_rng(3)
    episodes = [_episode(i) for i in range(3)]
    policy = ExecutionPolicy(ScriptedPredictor({e.key: _chunks(rng, 10) for e in episodes}), "temporal_ensemble", "threshold")
    policy.start_episode(episodes[0])
    policy.start_episode(episodes[1])
    for t in range(4):  # episode 0 runs on; episode 1 ended after one step
        policy.infer([_obs(episodes[0], t)] + ([_obs(episodes[1], t)] if t == 0 else []))
        if t == 0:
            policy.end_episode(episodes[1])
    policy.start_episode(episodes[2])
    assert policy.states.peek(episodes[1].key) is None
    assert policy.states.peek(episodes[0].key) is not None and len(policy.states) == 2
    policy.end_episode(episodes[0])
    policy.end_episode(episodes[2])
    assert len(policy.states) == 0
