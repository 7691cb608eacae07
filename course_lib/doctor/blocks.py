"""Checks of whole attention blocks: masks that are missing, masks of mixed types, and
query rows left with no key at all."""

from __future__ import annotations

import torch
from torch import nn

from course_lib.doctor.masks import FILL_THRESHOLD
from course_lib.doctor.report import Finding, finding
from course_lib.doctor.setup import BLOCKS, SPECS, Setup
from course_lib.masks import causal_mask

__all__ = ["missing_masks", "block_findings"]

_DECODER_MASKS = ("tgt_mask", "tgt_key_padding_mask", "memory_mask", "memory_key_padding_mask")


def _source_has_pad(setup: Setup) -> bool:
    if setup.ids["src"] is not None:
        return bool(setup.pad("src").any())
    given = [setup.masks[n] for n in ("src_key_padding_mask",) if n in setup.masks]
    return any(m.dtype == torch.bool and bool(m.any()) for m in given)


def _blocks_future(mask: torch.Tensor | None) -> bool:
    """A square bool or additive mask that blocks every key after its query (maybe more)."""
    if mask is None or mask.dim() < 2 or mask.shape[-1] != mask.shape[-2]:
        return False
    if mask.dtype != torch.bool:
        mask = torch.isneginf(mask) | (mask <= FILL_THRESHOLD)
    return bool((mask | ~causal_mask(mask.shape[-1], device=mask.device)).all())


def _left_padded(pad: torch.Tensor) -> bool:
    """Some sequence starts with PAD and has a real token later."""
    return bool((pad[:, 0] & ~pad.all(dim=1)).any())


def _pad_in_attn_mask(setup: Setup, attn_name: str, key_pad: torch.Tensor | None) -> bool:
    """A 3-D [B*H, Lq, Lk] attn_mask that already blocks every PAD key of its sequence."""
    mask = setup.masks.get(attn_name)
    if key_pad is None or mask is None or mask.dim() != 3 or mask.shape[0] % len(key_pad) \
            or mask.shape[-1] != key_pad.shape[1]:
        return False
    if mask.dtype != torch.bool:
        mask = torch.isneginf(mask) | (mask <= FILL_THRESHOLD)
    batch_major = mask.view(len(key_pad), -1, *mask.shape[1:])
    head_major = mask.view(-1, len(key_pad), *mask.shape[1:]).transpose(0, 1)  # .repeat order
    return any(bool((view | ~key_pad[:, None, None, :]).all())
               for view in (batch_major, head_major))


def missing_masks(setup: Setup) -> list[Finding]:
    """Masks a padded batch needs that were not given."""
    if setup.model_builds_masks:
        return []
    given, out = setup.masks, []
    decoder = setup.ids["tgt"] is not None or any(n in given for n in _DECODER_MASKS)
    # A recurrent decoder reads left to right: causal by construction, no self-attention.
    recurrent = setup.heads is None and setup.model is not None and any(
        isinstance(m, nn.RNNBase | nn.RNNCellBase) for m in setup.model.modules())
    src_pad, tgt_pad = setup.pad("src"), setup.pad("tgt")
    if src_pad is not None and bool(src_pad.any()) and "src_key_padding_mask" not in given \
            and not _pad_in_attn_mask(setup, "src_mask", src_pad):
        out.append(finding("src-key-padding-mask-missing", "src_key_padding_mask", (
            f"src has {int(src_pad.sum())} PAD positions and no src_key_padding_mask was given")))
    if decoder and not recurrent and "tgt_mask" not in given:
        out.append(finding("tgt-mask-missing", "tgt_mask",
                           "the decoder gets no tgt_mask, so no position is hidden from another"))
    if decoder and _source_has_pad(setup) and "memory_key_padding_mask" not in given \
            and not _pad_in_attn_mask(setup, "memory_mask", src_pad):
        out.append(finding("memory-key-padding-mask-missing", "memory_key_padding_mask", (
            "the source has PAD positions and the cross-attention gets no "
            "memory_key_padding_mask" + (" (src_key_padding_mask alone does not reach it)"
                                         if "src_key_padding_mask" in given else ""))))
    if tgt_pad is not None and bool(tgt_pad.any()) and not recurrent \
            and "tgt_key_padding_mask" not in given \
            and not _pad_in_attn_mask(setup, "tgt_mask", tgt_pad):
        harmless = not _left_padded(tgt_pad) and _blocks_future(given.get("tgt_mask"))
        out.append(finding("tgt-key-padding-mask-missing", "tgt_key_padding_mask", (
            f"tgt_in has {int(tgt_pad.sum())} PAD positions and no tgt_key_padding_mask was given"
            + (": harmless here (right padding, causal tgt_mask), fragile elsewhere"
               if harmless else "; real queries can attend to them")),
            severity="warning" if harmless else "error"))
    return out


def _query_pad(setup: Setup, block: str, usable: dict) -> torch.Tensor | None:
    side = SPECS[BLOCKS[block][0]][1]
    if setup.pad(side) is not None:
        return setup.pad(side)
    own = usable.get("src_key_padding_mask" if side == "src" else "tgt_key_padding_mask")
    return None if own is None else own[:, 0, 0, :]


def _mixed_types(block: str, masks: dict[str, torch.Tensor]) -> Finding | None:
    attn_name, padding_name = BLOCKS[block]
    if attn_name not in masks or padding_name not in masks:
        return None
    kinds = {name: "bool" if masks[name].dtype == torch.bool else "float"
             for name in (attn_name, padding_name)}
    if kinds[attn_name] == kinds[padding_name]:
        return None
    return finding("mixed-mask-types", f"{attn_name} + {padding_name}", (
        f"{attn_name} is {masks[attn_name].dtype} and {padding_name} is "
        f"{masks[padding_name].dtype} in the {block}"))


def _empty_rows(setup: Setup, block: str, usable: dict) -> Finding | None:
    attn_name, padding_name = BLOCKS[block]
    parts = [usable[n] for n in (attn_name, padding_name) if n in usable]
    try:
        merged = parts[0] if len(parts) == 1 else parts[0] | parts[1]
    except RuntimeError:  # sizes the doctor could not infer disagree; reported per mask
        return None
    empty = merged.all(dim=-1).any(dim=1)  # [B or 1, Lq or 1]: some head has no key
    if not bool(empty.any()):
        return None
    argument = " + ".join(n for n in (attn_name, padding_name) if n in usable)
    finite = any(setup.masks[n].dtype.is_floating_point and not bool(
        torch.isneginf(setup.masks[n]).any()) for n in (attn_name, padding_name) if n in usable)
    effect = (" With a finite fill the row silently becomes a uniform average of the blocked "
              "keys." if finite else "")
    if empty.shape[1] == 1 and attn_name not in usable:
        rows = torch.nonzero(empty[:, 0]).flatten().tolist()
        return finding("fully-masked-rows", argument, (
            f"{padding_name} blocks every key of sequence(s) {rows}: an all-PAD sequence or an "
            f"inverted mask; every query of those sequences has no key.{effect}"))
    query_pad = _query_pad(setup, block, usable)
    if empty.shape[0] == 1 or query_pad is None:
        count = int(empty.sum())
        return finding("fully-masked-rows", argument, (
            f"{count} query row(s) of the {block} have every key blocked.{effect}"))
    empty = empty.expand_as(query_pad)
    real = empty & ~query_pad
    if bool(real.any()):
        return finding("fully-masked-rows", argument, (
            f"{int(real.sum())} REAL query position(s) of the {block} have every key blocked "
            f"(sequence, position: {torch.nonzero(real).tolist()[:4]}).{effect}"))
    key_pad = usable.get(padding_name)
    rows = f"{int(empty.sum())} PAD query position(s) of the {block}"
    if key_pad is not None and _left_padded(key_pad[:, 0, 0, :]) and attn_name in usable \
            and _blocks_future(setup.masks[attn_name]):
        return finding("left-padding-causal", argument, (
            f"{rows} have every key blocked: left padding with a causal mask leaves the "
            f"leading PAD queries only PAD keys to look at.{effect}"))
    return finding("fully-masked-rows", argument,
                   f"{rows} have every key blocked (no real position).{effect}")


def block_findings(setup: Setup, usable: dict[str, torch.Tensor]) -> list[Finding]:
    """Per attention block: mixed bool/float masks and rows with no allowed key.

    ``usable`` holds the masks that passed their own checks, as [B|1, H|1, Lq|1, Lk] bool.
    """
    out = []
    for block, names in BLOCKS.items():
        given = {n: setup.masks[n] for n in names if n in setup.masks}
        if not given or any(n not in usable for n in given):
            continue  # a broken mask of this block was reported already
        problem = _mixed_types(block, given)
        out += [problem] if problem else []
        problem = _empty_rows(setup, block, usable)
        out += [problem] if problem else []
    return out
