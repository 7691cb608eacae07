"""Checks beyond the masks: the model's embeddings, pad_id, dtype and encoder fast path, and
whether the loss ignores PAD targets."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.doctor.report import Finding, finding
from course_lib.doctor.setup import Setup
from course_lib.training import sequence_loss

__all__ = ["model_findings", "loss_findings"]


def _is_position_table(name: str) -> bool:
    """Learned position embeddings have no PAD row; the doctor tells them by their name."""
    return "pos" in name.lower()


def _embedding_findings(setup: Setup, pad_id: int) -> list[Finding]:
    out = []
    for name, module in setup.model.named_modules():
        if not isinstance(module, nn.Embedding) or _is_position_table(name) \
                or module.num_embeddings <= pad_id:
            continue
        where = f"model.{name}"
        if module.padding_idx is None:
            out.append(finding("embedding-without-padding-idx", where, (
                f"{where} = nn.Embedding({module.num_embeddings}, {module.embedding_dim}) has no "
                f"padding_idx; PAD is id {pad_id}")))
        elif module.padding_idx != pad_id:
            out.append(finding("embedding-padding-idx-mismatch", where, (
                f"{where} has padding_idx={module.padding_idx} but pad_id={pad_id}")))
        elif bool(module.weight[pad_id].detach().ne(0).any()):
            norm = float(module.weight[pad_id].detach().norm())
            out.append(finding("embedding-pad-row-nonzero", where, (
                f"{where}.weight[{pad_id}] (the PAD row) has norm {norm:.3g}, not 0")))
    return out


def _fast_path_findings(setup: Setup) -> list[Finding]:
    if "src_mask" in setup.masks or not torch.backends.mha.get_fastpath_enabled():
        return []  # the nested-tensor path needs a padding mask and no src_mask
    out = []
    for name, module in setup.model.named_modules():
        if isinstance(module, nn.TransformerEncoder) and getattr(module, "use_nested_tensor",
                                                                 False) \
                and not module.layers[0].training:
            where = f"model.{name}" if name else "model"
            out.append(finding("encoder-fast-path", where, (
                f"{where} is an nn.TransformerEncoder in eval mode with enable_nested_tensor="
                "True: under torch.no_grad(), with right padding, its PAD outputs are a "
                "constant (0.0, or its final norm's bias)")))
    return out


def _dtype_findings(setup: Setup) -> list[Finding]:
    dtype = next((p.dtype for p in setup.model.parameters() if p.dtype.is_floating_point), None)
    if dtype != torch.float16:
        return []
    lowest = torch.finfo(torch.float16).min
    out = []
    for name, mask in setup.masks.items():
        if mask.dtype.is_floating_point:
            too_low = torch.isfinite(mask) & (mask < lowest)
            if bool(too_low.any()):
                out.append(finding("fill-overflows-float16", name, (
                    f"{name} ({mask.dtype}) holds the finite fill {float(mask[too_low][0]):.3g} "
                    f"and the model computes in float16 (lowest finite value {lowest:.0f})")))
    return out


def model_findings(setup: Setup) -> list[Finding]:
    """Findings about ``setup.model``: pad_id, embeddings, fast path, float16 fills."""
    out = []
    model_pad = getattr(setup.model, "pad_id", None)
    if isinstance(model_pad, int) and model_pad != setup.pad_id:
        out.append(finding("model-pad-id-mismatch", "model", (
            f"model.pad_id = {model_pad} but pad_id = {setup.pad_id}")))
    else:  # embeddings that agree with the model's own pad_id are not a second problem
        out += _embedding_findings(setup, setup.pad_id)
    return out + _fast_path_findings(setup) + _dtype_findings(setup)


def _declared_ignore_index(loss_fn) -> int | None:
    """The PAD id a known loss ignores; None when it is not a known kind."""
    if isinstance(loss_fn, nn.CrossEntropyLoss | nn.NLLLoss):
        return loss_fn.ignore_index
    if isinstance(loss_fn, functools.partial):
        if loss_fn.func in (F.cross_entropy, F.nll_loss):
            return loss_fn.keywords.get("ignore_index", -100)
        if loss_fn.func is sequence_loss and "pad_id" in loss_fn.keywords:
            return loss_fn.keywords["pad_id"]
    return None


def _probe(loss_fn, pad_id: int) -> tuple[float, float]:
    """Loss before and after changing the logits only where the target is PAD."""
    generator = torch.Generator().manual_seed(0)
    vocab_size = max(pad_id + 2, 6)
    targets = torch.randint(0, vocab_size, (2, 5), generator=generator)
    targets[targets == pad_id] = (pad_id + 1) % vocab_size
    targets[:, 3:] = pad_id
    logits = torch.randn(2, 5, vocab_size, generator=generator)
    changed = logits.clone()
    changed[targets == pad_id] += 3 * torch.randn(int((targets == pad_id).sum()), vocab_size,
                                                  generator=generator)
    if loss_fn is sequence_loss:
        return (float(sequence_loss(logits, targets, pad_id)),
                float(sequence_loss(changed, targets, pad_id)))
    try:
        before = loss_fn(logits.flatten(0, 1), targets.flatten())
        after = loss_fn(changed.flatten(0, 1), targets.flatten())
        return float(before), float(after)
    except Exception as error:
        raise TypeError(
            "loss_fn: expected nn.CrossEntropyLoss/nn.NLLLoss, course_lib.training.sequence_loss "
            "or a function loss_fn(logits[N, V], targets[N]) -> scalar; calling it with logits "
            f"{[10, vocab_size]} and targets [10] raised {type(error).__name__}: {error}"
        ) from error


def loss_findings(setup: Setup) -> list[Finding]:
    """Does the loss ignore PAD targets? Read from its settings, else measured."""
    loss_fn, pad_id = setup.loss_fn, setup.pad_id
    ignore_index = _declared_ignore_index(loss_fn)
    if ignore_index is not None:
        if ignore_index == pad_id:
            return []
        default = " (-100 is the default)" if ignore_index == -100 else ""
        return [finding("loss-ignore-index", "loss_fn", (
            f"the loss ignores targets equal to {ignore_index}{default}, but PAD is {pad_id}"))]
    before, after = _probe(loss_fn, pad_id)
    if abs(before - after) <= 1e-6 * max(1.0, abs(before)):
        return []
    return [finding("loss-ignore-index", "loss_fn", (
        f"changing only the logits at PAD targets changed the loss from {before:.4f} to "
        f"{after:.4f}: PAD targets are counted"))]
