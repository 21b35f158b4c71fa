"""The auxiliary head: what ``dropout`` and ``pooling`` do, honestly.

For a fixed model, the head's settings change only the auxiliary output, never
the mask logits: pooling changes it in eval mode, dropout only in train mode
(dropout is the identity in eval). Both change the masks through training,
because the auxiliary loss flows back into the shared encoder.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from glaciermap.models.aux_head import AuxHead
from glaciermap.models.registry import build_model
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import HParams

torch.set_num_threads(1)

NAMES = ["fpn", "wavemix"]


def spec(name: str, dropout: float, pooling: str, aux_weight: float = 0.4) -> ModelSpec:
    extra = {"dim": 16, "depth": 2} if name == "wavemix" else {}
    return ModelSpec(
        name,
        HParams(dropout, "sigmoid", pooling),
        encoder="resnet18",
        aux_weight=aux_weight,
        extra=extra,
    )


def same_weights(name: str, dropout: float, pooling: str, state: dict) -> torch.nn.Module:
    model = build_model(spec(name, dropout, pooling))
    model.load_state_dict(state)  # pooling and dropout have no weights of their own
    return model


@pytest.mark.parametrize("name", NAMES)
def test_head_settings_change_the_aux_output_but_not_the_masks(name: str) -> None:
    torch.manual_seed(0)
    reference = build_model(spec(name, 0.0, "max"))
    state = reference.state_dict()
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        masks, aux_max = reference.eval()(x)
        masks_mean, aux_mean = same_weights(name, 0.0, "mean", state).eval()(x)
        masks_drop, aux_drop_eval = same_weights(name, 0.5, "max", state).eval()(x)
        assert torch.equal(masks, masks_mean) and torch.equal(masks, masks_drop)
        assert not torch.allclose(aux_max, aux_mean)
        assert torch.equal(aux_max, aux_drop_eval)  # dropout is off in eval mode
        dropping = same_weights(name, 0.5, "max", state).eval()
        dropping.aux_head.train()
        masks_train, aux_drop_train = dropping(x)
        assert torch.equal(masks, masks_train)
        assert not torch.allclose(aux_max, aux_drop_train)


def one_step(model: torch.nn.Module, aux_weight: float) -> dict[str, torch.Tensor]:
    """One SGD step of the documented loss: seg + aux_weight * BCE(aux, glacier fraction)."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 4, 64, 64, generator=generator)
    target = (torch.rand(4, 1, 64, 64, generator=generator) > 0.7).float()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(2)  # same dropout masks for runs with the same dropout
    masks, aux = model.train()(x)
    loss = F.binary_cross_entropy_with_logits(masks, target)
    if aux is not None:
        fraction = target.mean(dim=(1, 2, 3)).unsqueeze(1)
        loss = loss + aux_weight * F.binary_cross_entropy_with_logits(aux, fraction)
    loss.backward()
    optimiser.step()
    return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}


@pytest.mark.parametrize("name", NAMES)
def test_each_head_setting_changes_the_trained_segmentation_weights(name: str) -> None:
    torch.manual_seed(0)
    state = build_model(spec(name, 0.2, "max")).state_dict()
    trained = {
        (dropout, pooling): one_step(same_weights(name, dropout, pooling, state), 0.4)
        for dropout, pooling in [(0.2, "max"), (0.2, "mean"), (0.5, "max")]
    }
    without_aux = build_model(spec(name, 0.2, "max", aux_weight=0.0))
    without_aux.load_state_dict(state, strict=False)  # the same weights, minus the head
    trained["no aux"] = one_step(without_aux, 0.0)
    again = one_step(same_weights(name, 0.2, "max", state), 0.4)
    base = trained[(0.2, "max")]
    segmentation = list(trained["no aux"])  # every weight but the head's
    assert all(torch.equal(base[k], again[k]) for k in base)  # deterministic
    for other in [(0.2, "mean"), (0.5, "max"), "no aux"]:
        assert any(not torch.equal(base[k], trained[other][k]) for k in segmentation), other


def test_aux_head_pools_as_configured() -> None:
    features = torch.arange(8.0).view(1, 2, 2, 2)
    for pooling, expected in (("max", [3.0, 7.0]), ("mean", [1.5, 5.5])):
        head = AuxHead(2, pooling, dropout=0.0)
        with torch.no_grad():
            head.linear.weight.copy_(torch.tensor([[1.0, 10.0]]))
            head.linear.bias.zero_()
        assert head(features).item() == pytest.approx(expected[0] + 10 * expected[1])


@pytest.mark.parametrize("name", ["pan", "maresunet", "wavemix"])
def test_no_head_when_aux_weight_is_zero(name: str) -> None:
    model = build_model(spec(name, 0.3, "mean", aux_weight=0.0)).eval()
    assert model.aux_head is None
    with torch.no_grad():
        assert model(torch.randn(1, 4, 64, 64))[1] is None
