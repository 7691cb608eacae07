"""``doctor.check_causal_lm``: the inputs of a decoder-only language model, explained."""

from __future__ import annotations

import torch
from torch import nn

from course_lib._checks import check_bool_mask, check_tensor, check_token_ids
from course_lib.causal_lm import IGNORE_INDEX, position_ids_from_padding
from course_lib.doctor.report import Finding, Report, finding

__all__ = ["check_causal_lm"]


def _rows(mask: torch.Tensor) -> str:
    """'rows 0, 3' for a mask [B, ...]: the rows where it is True anywhere."""
    rows = mask.flatten(1).any(dim=1).nonzero()[:, 0].tolist()
    shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
    return f"row{'s' if len(rows) > 1 else ''} {shown}"


def _padding_from(attention_mask, key_padding_mask, findings):
    """The padding as BoolTensor[B, L] (True at PAD), or None if it cannot be read."""
    if key_padding_mask is not None:
        check_tensor("key_padding_mask", key_padding_mask)
        if key_padding_mask.dim() != 2:
            findings.append(finding(
                "mask-rank", "key_padding_mask",
                f"key_padding_mask is {key_padding_mask.dim()}-D, shape "
                f"{list(key_padding_mask.shape)}; a key padding mask is [B, L]",
                ids="input_ids"))
            return None
        if key_padding_mask.dtype == torch.bool:
            return key_padding_mask
        if key_padding_mask.dtype.is_floating_point:
            findings.append(finding("float-01-mask", "key_padding_mask",
                                    f"key_padding_mask is {key_padding_mask.dtype}, not bool",
                                    ids="input_ids"))
        else:
            findings.append(finding("integer-mask", "key_padding_mask",
                                    f"key_padding_mask is {key_padding_mask.dtype}, not bool",
                                    ids="input_ids"))
        return None
    if attention_mask is None:
        return None
    check_tensor("attention_mask", attention_mask)
    if attention_mask.dim() != 2:
        return None  # a 4-D attention_mask is read as the attention mask itself
    if attention_mask.dtype != torch.bool and not bool(
            ((attention_mask == 0) | (attention_mask == 1)).all()):
        raise ValueError("attention_mask: expected a Hugging Face [B, L] mask of 1 = keep and "
                         f"0 = pad, got other values (dtype {attention_mask.dtype})")
    return attention_mask == 0


def _padding_findings(ids, padding, pad_id, argument) -> list[Finding]:
    """Inverted or mismatched padding, decided from the ids (needs pad_id)."""
    is_pad = ids == pad_id
    if torch.equal(padding, ~is_pad) and bool(is_pad.any()):
        code = "attention-mask-inverted" if argument == "attention_mask" else \
            "padding-mask-inverted"
        what = "1" if argument == "attention_mask" else "True"
        return [finding(code, argument, f"{argument} is {what} exactly at the "
                        f"{int(is_pad.sum())} PAD tokens (input_ids == {pad_id}) and marks "
                        "the real tokens as padding", ids="input_ids")]
    hidden = padding & ~is_pad
    if bool(hidden.any()):
        return [finding("padding-mask-mismatch", argument,
                        f"{int(hidden.sum())} real tokens (input_ids != {pad_id}) are marked as "
                        f"padding, in {_rows(hidden)}", ids="input_ids")]
    return []


def _layout(padding: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per row: right-padded (a PAD after a real token) and left-padded (PAD, then real)."""
    pad_after_real = (padding[:, 1:] & ~padding[:, :-1]).any(dim=1)
    real_after_pad = (~padding[:, 1:] & padding[:, :-1]).any(dim=1)
    return {"right": pad_after_real, "left": real_after_pad & ~pad_after_real}


def _attn_mask_findings(attn_mask, argument, batch) -> list[Finding]:
    check_tensor(argument, attn_mask)
    if attn_mask.dim() != 4:
        return [finding("mask-rank", argument,
                        f"{argument} is {attn_mask.dim()}-D, shape {list(attn_mask.shape)}; a "
                        "per-query attention mask is [B, 1, Lq, Lk] (a [B, L] mask is a key "
                        "padding mask)", ids="input_ids")]
    if batch is not None and attn_mask.shape[0] not in (1, batch):
        raise ValueError(f"{argument}: expected [B, 1, Lq, Lk] with B = {batch} (or 1), got "
                         f"{list(attn_mask.shape)}")
    if attn_mask.dtype == torch.bool:
        return []
    if not attn_mask.dtype.is_floating_point:
        return [finding("integer-mask", argument, f"{argument} is {attn_mask.dtype}",
                        ids="input_ids")]
    if bool(((attn_mask == 0) | (attn_mask == 1)).all()) and bool((attn_mask == 1).any()):
        return [finding("float-01-mask", argument,
                        f"{argument} is a {attn_mask.dtype} mask of 0 and 1, added to the "
                        "scores", ids="input_ids")]
    empty = torch.isneginf(attn_mask).all(dim=-1)  # [B, H, Lq]
    if bool(empty.any()):
        return [finding("additive-mask-nan-rows", argument,
                        f"{int(empty.sum())} query rows of the {attn_mask.dtype} additive mask "
                        f"are -inf everywhere ({_rows(empty.flatten(1))}): their softmax is "
                        "NaN", ids="input_ids")]
    return []


def check_causal_lm(
    *, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
    key_padding_mask: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
    answer_mask: torch.Tensor | None = None, pad_id: int | None = None,
    generation: bool = False, model: nn.Module | None = None,
    document_ids: torch.Tensor | None = None,
) -> Report:
    """Check the inputs of a decoder-only (causal LM) call; return a :class:`Report`.

    Args:
        input_ids: LongTensor[B, L].
        attention_mask: the padding in the Hugging Face convention, [B, L] of 1 = keep and
            0 = pad (int, bool or float, as Hugging Face accepts), or a 4-D mask
            [B, 1, Lq, Lk], checked like ``attn_mask``.
        key_padding_mask: the padding in the course convention, BoolTensor[B, L], True at PAD
            (give this or ``attention_mask``).
        attn_mask: a per-query mask [B, 1, Lq, Lk] for an attention that takes one (SDPA,
            a model's attention layers): bool True = blocked, or additive float.
        position_ids: LongTensor[B, L], the positions the model will read (None: the
            model's default, 0..L-1).
        labels: LongTensor[B, L] aligned with the ids (Hugging Face's convention; the model
            shifts them), ``-100`` where nothing is trained.
        answer_mask: BoolTensor[B, L], True at the answer's tokens, when only the answer is
            meant to be trained (then labels on the prompt are flagged).
        pad_id: the PAD id (default: ``model.pad_id`` if the model has one); needed to
            decide from the ids whether a mask is inverted or missing.
        generation: the batch is about to be generated from (batched ``generate``).
        model: the model: its ``pad_id`` (a Hugging Face model's ``config.pad_token_id``) is
            compared with ``pad_id``.
        document_ids: LongTensor[B, L] for PACKED rows (several documents per row, -1 at
            PAD, as ``course_lib.packing.pack`` makes them): then the mask must keep the
            documents apart, the position ids must restart at each document, and no label
            may cross a document boundary.

    Returns:
        A :class:`Report`, as :func:`course_lib.doctor.check` returns.
    """
    if attention_mask is not None and key_padding_mask is not None:
        raise ValueError("attention_mask, key_padding_mask: give the padding once, as one of "
                         "them (attention_mask: 1 = keep; key_padding_mask: True = PAD)")
    if not isinstance(generation, bool):
        raise TypeError(f"generation: expected True or False, got {generation!r}")
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    # The course's models keep model.pad_id; a Hugging Face model, model.config.pad_token_id.
    model_pad = None if model is None else getattr(model, "pad_id", None)
    if model is not None and model_pad is None:
        model_pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    if pad_id is None:
        pad_id = model_pad
    elif isinstance(pad_id, bool) or not isinstance(pad_id, int):
        raise TypeError(f"pad_id: expected an int, got {pad_id!r}")
    if input_ids is not None:
        check_token_ids("input_ids", input_ids)
    if all(value is None for value in (input_ids, attention_mask, key_padding_mask, attn_mask,
                                       labels, document_ids)):
        raise ValueError("check_causal_lm: nothing to check; give input_ids and the masks, "
                         "labels or position ids the model is about to receive")
    findings: list[Finding] = []
    argument = "key_padding_mask" if key_padding_mask is not None else "attention_mask"
    padding = _padding_from(attention_mask, key_padding_mask, findings)
    if padding is not None and input_ids is not None and padding.shape != input_ids.shape:
        raise ValueError(f"{argument}: expected shape {list(input_ids.shape)} like input_ids, "
                         f"got {list(padding.shape)}")
    if attention_mask is not None and attention_mask.dim() == 4:
        findings += _attn_mask_findings(attention_mask, "attention_mask",
                                        None if input_ids is None else input_ids.shape[0])
    if attn_mask is not None:
        findings += _attn_mask_findings(attn_mask, "attn_mask",
                                        None if input_ids is None else input_ids.shape[0])
    if model_pad is not None and pad_id != model_pad:
        findings.append(finding("model-pad-id-mismatch", "model",
                                f"model.pad_id is {model_pad} but pad_id is {pad_id}",
                                ids="input_ids"))
    if padding is not None and input_ids is not None and pad_id is not None:
        found = _padding_findings(input_ids, padding, pad_id, argument)
        findings += found
        if found and found[0].code.endswith("inverted"):
            padding = input_ids == pad_id  # one root cause, one finding: read the true padding
    elif (padding is None and input_ids is not None and pad_id is not None
          and document_ids is None and key_padding_mask is None
          and (attention_mask is None or attention_mask.dim() != 2)
          and bool((input_ids == pad_id).any())):
        findings.append(finding(
            "padding-mask-missing", "attention_mask",
            f"{int((input_ids == pad_id).sum())} PAD tokens (input_ids == {pad_id}) in "
            f"{_rows(input_ids == pad_id)}, and no attention_mask or key_padding_mask",
            ids="input_ids"))
        padding = input_ids == pad_id
    if padding is None and isinstance(document_ids, torch.Tensor):
        padding = document_ids < 0  # a packed row: -1 marks its PAD
    if document_ids is not None:
        findings += _packing_findings(document_ids, attn_mask, position_ids, labels, input_ids)
    elif padding is not None:
        findings += _side_findings(padding, position_ids, generation, argument)
    if labels is not None:
        findings += _label_findings(labels, padding, answer_mask, pad_id, input_ids)
    given = padding if attention_mask is not None or key_padding_mask is not None else None
    checked = [name for name, value in (("input_ids", input_ids), (argument, given),
                                        ("document_ids", document_ids),
                                        ("attn_mask", attn_mask), ("position_ids", position_ids),
                                        ("labels", labels), ("model", model))
               if value is not None]
    if generation:
        checked.append("for generation")
    return Report(findings, checked)


def _side_findings(padding, position_ids, generation, argument) -> list[Finding]:
    layout = _layout(padding)
    if generation and bool(layout["right"].any()):
        return [finding("right-padding-generation", argument,
                        f"{_rows(layout['right'][:, None])} have PAD after their real tokens "
                        "(right padding), and the batch is about to be generated from",
                        ids="input_ids")]
    expected = position_ids_from_padding(padding)
    real = ~padding
    if position_ids is not None:
        check_token_ids("position_ids", position_ids)
        if position_ids.shape != padding.shape:
            raise ValueError(f"position_ids: expected shape {list(padding.shape)} like the "
                             f"padding mask, got {list(position_ids.shape)}")
        wrong = (position_ids != expected) & real
        if bool(wrong.any()):
            return [finding("position-ids-not-from-mask", "position_ids",
                            f"{_rows(wrong)}: the real tokens' position ids do not count "
                            "0, 1, 2, ... from each row's first real token (e.g. 0..L-1 on "
                            "a left-padded row)", ids="input_ids")]
        return []
    if bool(layout["left"].any()):
        return [finding("position-ids-not-from-mask", "position_ids",
                        f"{_rows(layout['left'][:, None])} are left-padded and no position_ids "
                        "are given, so the model uses 0..L-1",
                        severity="error" if generation else "warning", ids="input_ids")]
    return []


def _label_findings(labels, padding, answer_mask, pad_id, input_ids) -> list[Finding]:
    check_tensor("labels", labels, ndim=2)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels: expected integer token ids or {IGNORE_INDEX}, got "
                        f"{labels.dtype}")
    if input_ids is not None and labels.shape != input_ids.shape:
        raise ValueError(f"labels: expected shape {list(input_ids.shape)} like input_ids, got "
                         f"{list(labels.shape)}")
    findings = []
    trained = labels != IGNORE_INDEX
    if padding is not None and bool((trained & padding).any()):
        count = int((trained & padding).sum())
        held = " (they hold pad_id: -100 missing)" if pad_id is not None and bool(
            (labels[trained & padding] == pad_id).all()) else ""
        findings.append(finding("labels-train-on-pad", "labels",
                                f"{count} PAD positions have a label other than "
                                f"{IGNORE_INDEX}{held}", ids="input_ids"))
    if answer_mask is not None:
        check_bool_mask("answer_mask", answer_mask, ndim=2)
        if answer_mask.shape != labels.shape:
            raise ValueError(f"answer_mask: expected shape {list(labels.shape)} like labels, "
                             f"got {list(answer_mask.shape)}")
        prompt = trained & ~answer_mask & (~padding if padding is not None else True)
        if bool(prompt.any()):
            findings.append(finding("labels-train-on-prompt", "labels",
                                    f"{int(prompt.sum())} prompt tokens (outside answer_mask) "
                                    f"are labelled, in {_rows(prompt)}", ids="input_ids"))
    return findings


def _allowed(attn_mask: torch.Tensor) -> torch.Tensor:
    """BoolTensor like ``attn_mask``: True where a bool (True = blocked) or additive mask
    lets attention through (an additive value above half of ``finfo.min``)."""
    if attn_mask.dtype == torch.bool:
        return ~attn_mask
    return attn_mask > torch.finfo(attn_mask.dtype).min / 2


def _packing_findings(document_ids, attn_mask, position_ids, labels, input_ids) -> list[Finding]:
    from course_lib.packing import document_mask

    check_tensor("document_ids", document_ids, ndim=2)
    if document_ids.dtype.is_floating_point or document_ids.dtype == torch.bool:
        raise TypeError(f"document_ids: expected integer document indices, got "
                        f"{document_ids.dtype}")
    if input_ids is not None and document_ids.shape != input_ids.shape:
        raise ValueError(f"document_ids: expected shape {list(input_ids.shape)} like "
                         f"input_ids, got {list(document_ids.shape)}")
    findings = []
    real = document_ids >= 0
    starts = real.clone()
    starts[:, 1:] &= document_ids[:, 1:] != document_ids[:, :-1]
    several = (starts.sum(dim=1) > 1)
    other = document_mask(document_ids)  # True where the key is another document (or PAD)
    if attn_mask is None:
        if bool(several.any()):
            findings.append(finding("cross-document-attention", "attn_mask",
                                    f"{_rows(several[:, None])} hold several documents and "
                                    "no attn_mask is given: the model's causal mask spans "
                                    "the whole row", ids="input_ids"))
    elif attn_mask.dim() == 4 and attn_mask.shape[-2:] == document_ids.shape[-1:] * 2:
        leaks = (_allowed(attn_mask) & other[:, None] & real[:, None, :, None]).flatten(1)
        if bool(leaks.any()):
            findings.append(finding("cross-document-attention", "attn_mask",
                                    f"{int(leaks.sum())} (query, key) cells of real queries "
                                    f"see another document's key, in {_rows(leaks)}",
                                    ids="input_ids"))
    expected = torch.cumsum(torch.ones_like(document_ids), dim=1) - 1
    first = torch.where(starts, expected, torch.zeros_like(expected)).cummax(dim=1).values
    expected = (expected - first).masked_fill(~real, 0)
    if position_ids is None:
        if bool(several.any()):
            findings.append(finding("position-ids-not-restarted", "position_ids",
                                    f"no position_ids for packed {_rows(several[:, None])}: "
                                    "the model numbers the whole row 0..L-1", ids="input_ids"))
    else:
        check_token_ids("position_ids", position_ids)
        wrong = (position_ids != expected) & real
        if bool(wrong.any()):
            findings.append(finding("position-ids-not-restarted", "position_ids",
                                    f"{int(wrong.sum())} real tokens' position ids are not "
                                    f"their place in their document, in {_rows(wrong)}",
                                    ids="input_ids"))
    if labels is not None:
        check_tensor("labels", labels, ndim=2)
        crossing = starts[:, 1:] & (labels[:, 1:] != IGNORE_INDEX) & real[:, :-1]
        if bool(crossing.any()):
            findings.append(finding("labels-cross-documents", "labels",
                                    f"{int(crossing.sum())} document starts are labelled, so "
                                    "the token before each (the previous document's last) is "
                                    f"trained to predict them, in {_rows(crossing)}",
                                    ids="input_ids"))
    return findings
