"""Every finding the doctor can report: a stable code, its usual severity, why it matters and
the fix. The problem itself (which argument, how many cells, which shape) is written where the
finding is detected; ``{arg}`` in the texts below is the argument it is about.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Entry", "CODES", "SEVERITIES"]

SEVERITIES = ("error", "warning")  # error: wrong numbers or a crash; warning: fragile or deprecated


@dataclass(frozen=True)
class Entry:
    """What one kind of finding means. ``severity`` is the usual one (a finding may differ)."""

    severity: str
    title: str
    why: str
    fix: str


_NAN_WHY = ("a row with no allowed key is 0/0: NaN in attention written with masked_fill(-inf) "
            "+ softmax, in nn.MultiheadAttention with need_weights=True and in PyTorch's layers "
            "in eval mode without autograd (the fast path); from there the NaN reaches every "
            "position of the sequence in the next layer. Training mode gives 0 instead, so "
            "training looks fine and inference breaks")


CODES: dict[str, Entry] = {
    "integer-mask": Entry(
        "error", "an integer mask",
        "PyTorch refuses integer masks ('only bool and floating types ... are supported'); an "
        "integer 1/0 mask is usually a Hugging Face attention_mask, where 1 means KEEP",
        "a Hugging Face attention_mask (1 = keep, 0 = pad): course_lib.masks.from_hf(mask); "
        "if 1 already means blocked: mask.bool()"),
    "float-01-mask": Entry(
        "error", "a float 0/1 mask",
        "a float mask is ADDED to the scores, so 1.0 blocks nothing: it only nudges the scores "
        "of the cells you meant to hide, which keep their weight",
        "a bool mask, True = blocked (mask.bool() if 1 meant blocked), or an additive mask "
        "0 / -inf: course_lib.masks.to_additive(mask.bool())"),
    "padding-mask-inverted": Entry(
        "error", "a padding mask True on the real tokens",
        "nn.Transformer blocks attention where a bool mask is True, so every query sees only "
        "the PAD keys: the outputs do not depend on the real tokens at all (a mask in the "
        "F.scaled_dot_product_attention or Hugging Face convention, True/1 = keep, does this)",
        "{arg} = {ids} == pad_id (course_lib.masks.padding_mask); from a Hugging Face "
        "attention_mask: masks.from_hf(attention_mask); from an SDPA mask: ~mask"),
    "padding-mask-mismatch": Entry(
        "error", "a padding mask that disagrees with the PAD positions",
        "keys that are PAD but not blocked leak PAD contents into real outputs; real keys that "
        "are blocked hide real tokens",
        "{arg} = {ids} == pad_id: built from the ids whose positions are its keys, with the "
        "model's pad_id"),
    "mask-transposed": Entry(
        "error", "a transposed mask",
        "when both sides have the same length (e.g. B == S) PyTorch cannot tell and runs "
        "silently with the wrong cells blocked; otherwise it fails with a shape error",
        "transpose it back ({arg}.T) or build it in the expected layout"),
    "mask-shape": Entry(
        "error", "a mask of the wrong shape",
        "PyTorch raises a shape error, or broadcasts the mask over the wrong dimension",
        "build {arg} with the shape nn.Transformer documents for it"),
    "padding-mask-as-attn-mask": Entry(
        "error", "a [B, L] padding mask passed as an attn_mask",
        "an attn_mask is [L_query, L_key], shared by the batch: row i of a padding mask then "
        "blocks keys for QUERY i of every sequence. When B == L it runs without an error",
        "pass it as the block's key_padding_mask (src/tgt/memory_key_padding_mask)"),
    "mask-head-order": Entry(
        "error", "a 3-D mask built with .repeat instead of .repeat_interleave",
        "a [B*H, L, S] mask is read as batch-major (index b*H + h); .repeat(H, 1, 1) is "
        "head-major, so heads of one sequence get other sequences' masks",
        "mask.repeat_interleave(num_heads, dim=0), or pass the [B, S] padding mask as "
        "key_padding_mask and let PyTorch broadcast it"),
    "causal-mask-inverted": Entry(
        "error", "a causal mask with inverted polarity",
        "True on and below the diagonal is the F.scaled_dot_product_attention convention "
        "(True = allowed); nn.Transformer reads it as blocked, so each position sees only "
        "the FUTURE, and the last position nothing at all",
        "course_lib.masks.causal_mask(L) or nn.Transformer.generate_square_subsequent_mask(L, "
        "dtype=torch.bool): True ABOVE the diagonal; or ~mask"),
    "causal-mask-blocks-past": Entry(
        "error", "a causal mask that blocks the past",
        "True below the diagonal blocks the earlier tokens and leaves the later ones "
        "visible: teacher forcing then leaks every future target token",
        "causal_mask(L): True ABOVE the diagonal (key j > query i), i.e. .triu(diagonal=1)"),
    "tgt-mask-allows-future": Entry(
        "error", "a tgt_mask that lets positions see the future",
        "with teacher forcing the decoder input holds the whole target; any future key left "
        "visible lets the model copy the answer, and it fails when decoding for real",
        "tgt_mask = causal_mask(T) (True above the diagonal), alone or OR-ed with your mask"),
    "causal-src-mask": Entry(
        "warning", "a causal mask given as src_mask",
        "the encoder may see the whole source; a causal src_mask hides every later source "
        "token from each position and silently changes the outputs (the causal mask belongs "
        "in tgt_mask)",
        "src_mask=None for a standard seq2seq encoder; put the causal mask in tgt_mask"),
    "mixed-mask-types": Entry(
        "warning", "a bool and a float mask in the same attention block",
        "PyTorch warns 'Support for mismatched key_padding_mask and attn_mask is deprecated' "
        "on every call (an error in runs with warnings as errors)",
        "use bool masks everywhere: generate_square_subsequent_mask(T, dtype=torch.bool) or "
        "course_lib.masks.causal_mask(T)"),
    "src-key-padding-mask-missing": Entry(
        "error", "src has PAD but no src_key_padding_mask",
        "the encoder's self-attention reads the PAD positions: the same sentence gets "
        "different encodings in batches with different padding",
        "src_key_padding_mask = src == pad_id"),
    "memory-key-padding-mask-missing": Entry(
        "error", "src has PAD but no memory_key_padding_mask",
        "nn.Transformer does NOT copy src_key_padding_mask into the cross-attention: every "
        "target token reads the encoder outputs at the source PAD positions",
        "memory_key_padding_mask = src_key_padding_mask (the same tensor)"),
    "tgt-key-padding-mask-missing": Entry(
        "warning", "tgt_in has PAD but no tgt_key_padding_mask",
        "with right padding and a causal tgt_mask the PAD keys come after every real query and "
        "are hidden anyway; with left padding or without tgt_mask real queries read them",
        "tgt_key_padding_mask = tgt_in == pad_id"),
    "tgt-mask-missing": Entry(
        "error", "a decoder call without tgt_mask",
        "with teacher forcing the decoder input holds the whole target: without a causal mask "
        "position t reads the tokens it must predict, trains to copy them and fails when "
        "decoding for real",
        "tgt_mask = causal_mask(T) (bool, True above the diagonal)"),
    "fully-masked-rows": Entry(
        "error", "query rows with no allowed key",
        _NAN_WHY + "; with a finite fill like -1e9 the row silently averages the blocked keys",
        "find which mask blocks the whole row (an all-PAD sequence, an inverted mask) and fix "
        "it; for rows that must stay empty use an attention with a safe softmax"),
    "left-padding-causal": Entry(
        "error", "left padding with a causal mask leaves rows with no allowed key",
        "a PAD query at the start of a left-padded sequence may only look at earlier keys, "
        "which are all PAD: " + _NAN_WHY,
        "pad on the right (course_lib.data.collate does), or use an attention with a safe "
        "softmax, and exclude PAD positions from the loss"),
    "fill-overflows-float16": Entry(
        "warning", "a finite fill that float16 cannot hold",
        "the model computes in float16, whose most negative finite value is -65504: "
        "masked_fill(-1e9) on a float16 tensor raises, and .half() turns -1e9 into -inf, so "
        "the 'NaN-safe' finite fill gives NaN on rows with no allowed key after all",
        "use bool masks, or fill with torch.finfo(dtype).min of the compute dtype"),
    "embedding-without-padding-idx": Entry(
        "warning", "a token embedding without padding_idx",
        "the PAD embedding is trained like any token (it gets gradient through every "
        "unmasked use) instead of staying a fixed zero vector",
        "nn.Embedding(vocab_size, d_model, padding_idx=pad_id)"),
    "embedding-padding-idx-mismatch": Entry(
        "error", "an embedding whose padding_idx is not pad_id",
        "the row kept at zero (and frozen) is another token's, while the PAD row is trained",
        "padding_idx=pad_id"),
    "embedding-pad-row-nonzero": Entry(
        "warning", "an embedding whose PAD row is not zero",
        "padding_idx only zeroes the row at construction and gives it no gradient: "
        "re-initialising the weights (nn.init.normal_) afterwards leaves noise there, which "
        "no gradient removes (AdamW's weight decay only shrinks it slowly)",
        "re-zero it after initialising: with torch.no_grad(): emb.weight[pad_id].zero_()"),
    "model-pad-id-mismatch": Entry(
        "error", "the model's pad_id is not the batch's",
        "a model that builds its masks from its own pad_id masks the wrong positions",
        "build the model with pad_id equal to the vocabulary's PAD id"),
    "encoder-fast-path": Entry(
        "warning", "an eval-mode encoder on the nested-tensor fast path",
        "in eval mode without autograd, with a right-padded src_key_padding_mask and no "
        "mask, nn.TransformerEncoder packs the real tokens into a nested tensor: its PAD "
        "outputs become a constant (0.0, then the final norm's bias if it has a final norm; "
        "non-constant garbage in training), it warns 'nested tensors is in prototype stage', "
        "and constant PAD memory can hide a missing memory_key_padding_mask from a "
        "PAD-contents test",
        "nn.TransformerEncoder(..., enable_nested_tensor=False) as Seq2SeqTransformer does, or "
        "torch.backends.mha.set_fastpath_enabled(False); test masking in training mode"),
    "loss-ignore-index": Entry(
        "error", "a loss that counts PAD targets",
        "the loss (and its gradient) includes the PAD positions: the model is trained to "
        "predict PAD after EOS and the mean is taken over the wrong number of tokens",
        "nn.CrossEntropyLoss(ignore_index=pad_id) or course_lib.training.sequence_loss"),
    # --- decoder-only (causal LM) inputs: doctor.check_causal_lm -------------------------
    "attention-mask-inverted": Entry(
        "error", "a Hugging Face attention_mask with 1 on the PAD tokens",
        "attention_mask keeps the positions where it is 1, so every query attends to the PAD "
        "keys only and the real tokens are hidden (a mask in the nn.MultiheadAttention "
        "convention, True = blocked, passed as attention_mask does this)",
        "attention_mask = (input_ids != pad_id).long(); from a course key_padding_mask: "
        "(~key_padding_mask).long()"),
    "padding-mask-missing": Entry(
        "error", "padded ids without a padding mask",
        "without a mask every query also attends to the PAD keys, so each row's outputs "
        "depend on how much padding the batch gave it",
        "pass attention_mask = (input_ids != pad_id).long() (Hugging Face) or "
        "key_padding_mask = input_ids == pad_id (course_lib.causal_lm.CausalLM)"),
    "right-padding-generation": Entry(
        "error", "right padding in a batch about to be generated from",
        "generation appends each new token at the END of the row: after PAD for every "
        "prompt shorter than the batch, and its first new token is predicted from a PAD "
        "position instead of the prompt's last token",
        "pad on the LEFT for generation (tokenizer.padding_side = 'left'), with the mask and "
        "position ids from the mask"),
    "position-ids-not-from-mask": Entry(
        "error", "left padding without position ids counted from the mask",
        "with positions 0..L-1 every left-padded row starts its real tokens at a later "
        "position than it would alone (a learned or rotary position code then reads shifted "
        "positions), so its outputs differ from the prompt alone",
        "position_ids = course_lib.causal_lm.position_ids_from_padding(key_padding_mask), "
        "which is attention_mask.cumsum(-1) - 1 at the real tokens, as Hugging Face's "
        "generate computes"),
    "labels-train-on-pad": Entry(
        "error", "labels that train on PAD",
        "a label at a PAD position is a target like any other: the model is trained to "
        "predict PAD, and the mean loss counts tokens that are not in the data",
        "labels[padding] = -100 (F.cross_entropy's ignore_index), or a loss with "
        "ignore_index = pad_id"),
    "labels-train-on-prompt": Entry(
        "warning", "labels that train on the prompt",
        "the answer was meant to be the only target, yet the prompt's tokens are labelled "
        "too: the loss and its gradient are shared with predicting the prompt, which is not "
        "the task and is often unpredictable (random inputs)",
        "labels[~answer_mask] = -100, so that only the answer's tokens are trained"),
    "mask-rank": Entry(
        "error", "a mask of the wrong rank for its argument",
        "a [B, L] padding mask says which KEYS are PAD; a [B, 1, Lq, Lk] mask gives every "
        "query its own allowed keys. Passed in each other's place, the mask is refused or "
        "broadcast over the wrong dimensions",
        "pass the [B, L] mask as key_padding_mask / attention_mask and the 4-D one as "
        "attn_mask; course_lib.causal_lm.decoder_mask turns the first into the second"),
    "additive-mask-nan-rows": Entry(
        "error", "an additive -inf mask with rows that have no allowed key",
        "softmax over a row of -inf is 0/0: NaN, which spreads to every position in the next "
        "layer. Left padding + causal makes such rows (the PAD queries at the start of a "
        "row); in float16 a finite -1e9 becomes -inf too",
        "fill with torch.finfo(dtype).min (finite: such a row becomes uniform, as in Hugging "
        "Face's 4-D mask), or use a bool mask with SDPA, which gives 0 there"),
    # --- packed rows (several documents per row): doctor.check_causal_lm(document_ids=...) --
    "cross-document-attention": Entry(
        "error", "a packed row whose mask lets tokens attend across documents",
        "with a plain causal mask every token of a packed row also attends to the documents "
        "packed before it: its output depends on unrelated text, and differs from the "
        "document alone",
        "a document mask: course_lib.packing.document_mask(document_ids, causal=True) (or its "
        "FlexAttention mask_mod), which blocks every key of another document and every PAD key"),
    "position-ids-not-restarted": Entry(
        "error", "packed documents whose position ids do not restart at 0",
        "each document after the first of its row reads positions it would not have alone "
        "(0..L-1 across the row), so a learned or rotary position code sees shifted positions",
        "packed.position_ids from course_lib.packing.pack: 0 at each document's first token"),
    "labels-cross-documents": Entry(
        "error", "labels that ask a document's last token for the next document's first",
        "the shifted loss trains the last token of each document to predict the first token "
        "of an unrelated document packed after it: a target that nothing in its context "
        "explains",
        "course_lib.packing.packed_labels(packed): -100 at each document's first token and "
        "at PAD"),
}
