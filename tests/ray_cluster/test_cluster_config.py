import pytest

from ray_cluster.config import ClusterConfig, load_config

pytestmark = pytest.mark.ray


def test_defaults_schedule_on_a_small_machine():
    config = load_config()
    assert isinstance(config, ClusterConfig)
    assert config.model.showo == "default"
    assert config.tokenizer.num_cpus + config.transformer.num_cpus <= 2  # both pools fit a 2-core machine
    assert config.transformer.num_gpus == 0 and config.batch_generation is True


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "model: {showo: ckpt/show-o, tokenizer: ckpt/magvit, text_tokenizer: ckpt/phi}\n"
        "models: {tuned: {showo: ckpt/tuned, tokenizer: ckpt/magvit, text_tokenizer: ckpt/phi}}\n"
        "transformer: {min_replicas: 0, max_replicas: 3, target_ongoing_requests: 1.5, num_gpus: 0.5,"
        " max_batch_size: 4}\n"
    )
    config = load_config(path, ["transformer.num_cpus=0.25", "tokenizer.num_gpus=0.25", "batch_generation=false"])
    assert config.model.showo == "ckpt/show-o"
    assert list(config.catalog()) == ["show-o", "tuned"] and config.catalog()["tuned"].showo == "ckpt/tuned"
    scaling = config.transformer.autoscaling()
    assert (scaling["min_replicas"], scaling["initial_replicas"], scaling["max_replicas"]) == (0, 1, 3)
    assert scaling["target_ongoing_requests"] == 1.5
    assert (config.transformer.num_gpus, config.transformer.num_cpus) == (0.5, 0.25)
    assert config.transformer.max_batch_size == 4 and config.tokenizer.num_gpus == 0.25 and not config.batch_generation


def test_model_names_are_checked():
    assert list(load_config().catalog()) == ["show-o-shapesworld"]
    with pytest.raises(ValueError, match="repeats the name of the default model"):
        load_config(overrides=["models.show-o-shapesworld.showo=ckpt/x"])
    with pytest.raises(ValueError, match="a model name is"):
        load_config(overrides=["models._bad.showo=ckpt/x"])
    with pytest.raises(ValueError, match=r"models.other.family must be one of"):
        load_config(overrides=["models.other.family=dalle"])


@pytest.mark.parametrize(
    "override, words",
    [
        ("transformer.max_replicas=0", "max_replicas"),
        ("transformer.min_replicas=4", "min_replicas"),
        ("transformer.target_ongoing_requests=0", "target_ongoing_requests"),
        ("transformer.max_models=0", "max_models"),
        ("transformer.metrics_interval_s=40", "metrics_interval_s"),
        ("tokenizer.num_gpus=1.5", "num_gpus"),
        ("transformer.request_timeout_s=0", "request_timeout_s"),
        ("tokenizer.startup_timeout_s=-1", "startup_timeout_s"),
        ("transformer.retries=-1", "retries"),
        ("transformer.bogus=1", "bogus"),
        ("transformer.num_cpus=lots", "num_cpus"),
    ],
)
def test_bad_values_name_the_key(override, words):
    with pytest.raises(ValueError, match=words):
        load_config(overrides=[override])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
