"""The run config's `loss:` section (the training loss), and its old name `objective:` still
read with a one-line deprecation notice."""
import pytest

from evo_msa.config import LossConfig, RunConfig
from evo_msa.errors import UserError
from evo_msa.space import parse_space


def test_the_loss_section_configures_the_training_loss():
    cfg = RunConfig.from_dict({"loss": {"gamma_kl": 0.3}}, "arch.yaml")
    assert isinstance(cfg.loss, LossConfig) and cfg.loss.gamma_kl == 0.3
    assert "loss" in cfg.to_dict() and "objective" not in cfg.to_dict()


def test_the_old_section_name_is_read_with_one_notice():
    with pytest.warns(FutureWarning, match=r"arch.yaml: 'objective' is now 'loss'") as seen:
        cfg = RunConfig.from_dict({"objective": {"gamma_kl": 0.3}}, "arch.yaml")
    assert cfg.loss.gamma_kl == 0.3 and len(seen) == 1
    with pytest.warns(FutureWarning, match=r"'objective.lambda_main' is now 'loss.lambda_main'"):
        assert RunConfig().with_overrides({"objective.lambda_main": 0.7}).loss.lambda_main == 0.7


def test_both_names_at_once_is_an_error():
    with pytest.raises(UserError, match="both 'loss' and its old name 'objective'"):
        RunConfig.from_dict({"loss": {}, "objective": {}}, "arch.yaml")


def test_a_space_with_old_gene_names_decodes_to_the_same_config():
    genes = {"gamma_kl": {"type": "float", "low": 0.0, "high": 1.0}}
    new = parse_space({"genes": {f"loss.{k}": v for k, v in genes.items()},
                       "fixed": {"loss.lambda_main": 0.9}}, "new.yaml")
    with pytest.warns(FutureWarning, match="old.yaml"):
        old = parse_space({"genes": {f"objective.{k}": v for k, v in genes.items()},
                           "fixed": {"objective.lambda_main": 0.9}}, "old.yaml")
    assert [g.path for g in old.genes] == ["loss.gamma_kl"]
    assert old.to_config([0.25]).to_dict() == new.to_config([0.25]).to_dict()
    assert new.to_config([0.25]).loss.lambda_main == 0.9


def test_the_architecture_key_is_unchanged_by_the_rename():
    """Recorded runs' identities (and the training seeds drawn from them) stay valid."""
    from evo_msa.space.space import SearchSpace

    key = SearchSpace.architecture_key(RunConfig())
    assert '"objective": {' in key and '"loss": {' not in key
