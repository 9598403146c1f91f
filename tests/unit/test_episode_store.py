"""The episode store keeps recorded episodes intact and refuses bad data with errors that name the field."""
import json
import os

import h5py
import numpy as np
import pytest

from inril_core.episodes.store import Episode, EpisodeStore, load_robomimic_hdf5


def make_episode(length: int = 5, obs_dim: int = 4, act_dim: int = 2, seed: int = 0, **metadata) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        observations=rng.normal(size=(length, obs_dim)),
        actions=rng.uniform(-1, 1, size=(length, act_dim)),
        rewards=np.zeros(length),
        metadata={"task": "lift", "source": "scripted", "success": False, "seed": seed, **metadata},
    )


def test_append_then_read_round_trips_arrays_and_metadata(tmp_path):
    store = EpisodeStore(tmp_path / "demos")
    episode = make_episode(policy_version=3)

    index = store.append(episode)
    loaded = store[index]

    assert index == 0 and len(store) == 1
    np.testing.assert_array_equal(loaded.observations, episode.observations)
    np.testing.assert_array_equal(loaded.actions, episode.actions)
    np.testing.assert_array_equal(loaded.rewards, episode.rewards)
    assert loaded.observations.dtype == np.float32
    assert loaded.metadata["policy_version"] == 3 and "created" in loaded.metadata


def test_indices_iteration_and_metadata_follow_append_order(tmp_path):
    store = EpisodeStore(tmp_path)
    for seed in range(3):
        assert store.append(make_episode(seed=seed)) == seed

    assert [ep.metadata["seed"] for ep in store] == [0, 1, 2]
    assert [m["seed"] for m in store.metadata()] == [0, 1, 2]
    assert store[-1].metadata["seed"] == 2
    with pytest.raises(IndexError, match="has 3 episodes"):
        store[3]


def test_a_reader_sees_episodes_appended_by_another_store_object(tmp_path):
    writer, reader = EpisodeStore(tmp_path), EpisodeStore(tmp_path, create=False)
    writer.append(make_episode())
    assert len(reader) == 1


def test_a_leftover_temp_file_from_a_crash_is_not_an_episode_and_is_overwritten(tmp_path):
    store = EpisodeStore(tmp_path)
    store.append(make_episode(seed=0))
    (tmp_path / "episode_000001.h5.tmp").write_bytes(b"half-written garbage")

    assert len(store) == 1
    assert store.append(make_episode(seed=1)) == 1
    assert [m["seed"] for m in store.metadata()] == [0, 1]
    assert not (tmp_path / "episode_000001.h5.tmp").exists()


def test_metadata_is_stored_as_json_in_an_attribute(tmp_path):
    EpisodeStore(tmp_path).append(make_episode(success=True))
    with h5py.File(tmp_path / "episode_000000.h5", "r") as f:
        assert json.loads(f.attrs["metadata"])["success"] is True


def test_an_episode_with_different_dims_is_refused(tmp_path):
    store = EpisodeStore(tmp_path)
    store.append(make_episode(obs_dim=4))
    with pytest.raises(ValueError, match="obs_dim=5.*obs_dim=4"):
        EpisodeStore(tmp_path).append(make_episode(obs_dim=5))
    assert (store.obs_dim, store.act_dim) == (4, 2)


def test_opening_a_missing_store_without_create_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.*does not exist"):
        EpisodeStore(tmp_path / "nope", create=False)


@pytest.mark.parametrize(
    "field, arrays, message",
    [
        ("actions", dict(actions=np.zeros((4, 2))), r"Episode.actions has shape \(4, 2\), expected \(5, 2\)"),
        ("rewards", dict(rewards=np.zeros((5, 1))), r"Episode.rewards must have shape \(T,\); found shape \(5, 1\)"),
        ("observations", dict(observations=np.zeros(5)), r"Episode.observations must have shape \(T, dim\)"),
        ("observations", dict(observations=np.full((5, 4), np.nan)), "Episode.observations has a NaN or Inf"),
    ],
)
def test_invalid_episode_names_the_field_and_shapes(field, arrays, message):
    base = dict(observations=np.zeros((5, 4)), actions=np.zeros((5, 2)), rewards=np.zeros(5))
    with pytest.raises(ValueError, match=message):
        Episode(**{**base, **arrays})


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="source.*scripted, teleop, policy, eval"):
        make_episode(source="human")


def write_robomimic(path, demos: dict[str, int], obs_keys=("object", "robot0_eef_pos", "robot0_eef_quat",
                                                           "robot0_gripper_qpos")) -> None:
    """A file in robomimic's documented layout (data/demo_i/{obs/<key>, actions, rewards, dones})."""
    widths = {"object": 10, "robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {}})
        for name, length in demos.items():
            demo = data.create_group(name)
            for i, key in enumerate(obs_keys):
                demo.create_dataset(f"obs/{key}", data=np.full((length, widths[key]), i, dtype=np.float64))
            demo.create_dataset("actions", data=np.zeros((length, 7)))
            rewards = np.zeros(length)
            rewards[-1] = 1.0
            demo.create_dataset("rewards", data=rewards)
            demo.create_dataset("dones", data=rewards.astype(np.int64))
            demo.attrs["num_samples"] = length


def test_robomimic_import_concatenates_obs_keys_in_contract_order(tmp_path):
    path = tmp_path / "low_dim.hdf5"
    write_robomimic(path, {"demo_0": 3, "demo_10": 4, "demo_2": 5})

    episodes = load_robomimic_hdf5(path)

    assert [len(ep) for ep in episodes] == [3, 5, 4]  # numeric demo order, not string order
    first = episodes[0]
    assert first.observations.shape == (3, 19) and first.actions.shape == (3, 7)
    np.testing.assert_array_equal(first.observations[0], [0] * 10 + [1] * 3 + [2] * 4 + [3] * 2)
    assert first.metadata["task"] == "Lift" and first.metadata["success"] is True


def test_robomimic_import_names_missing_obs_keys(tmp_path):
    path = tmp_path / "partial.hdf5"
    write_robomimic(path, {"demo_0": 3}, obs_keys=("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"))
    with pytest.raises(KeyError, match=r"data/demo_0 lacks \['obs/object'\]"):
        load_robomimic_hdf5(path)


def test_imported_episodes_append_to_a_store(tmp_path):
    path = tmp_path / "low_dim.hdf5"
    write_robomimic(path, {"demo_0": 3, "demo_1": 3})
    store = EpisodeStore(tmp_path / "store")
    for episode in load_robomimic_hdf5(path):
        store.append(episode)
    assert len(store) == 2 and store.obs_dim == 19
    assert sorted(os.listdir(tmp_path / "store")) == ["episode_000000.h5", "episode_000001.h5"]
