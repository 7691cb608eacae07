"""The mask doctor: inspects the tensors about to go into a model and explains mistakes.

    from course_lib import doctor
    report = doctor.check(src=src, tgt_in=tgt_in, pad_id=Vocab.PAD,
                          src_key_padding_mask=src_key_padding_mask, tgt_mask=tgt_mask,
                          tgt_key_padding_mask=tgt_key_padding_mask,
                          memory_key_padding_mask=memory_key_padding_mask,
                          model=model, loss_fn=criterion)
    print(report)                                # what is wrong, why it matters, the fix
    assert report.ok                             # nothing found
    assert "padding-mask-inverted" in report.codes   # programmatic use

For a decoder-only model, ``doctor.check_causal_lm(input_ids=..., attention_mask=...,
position_ids=..., labels=..., generation=True)`` checks padding side, position ids, labels and
the 4-D mask (lesson 09).

Conventions are those of ``nn.Transformer``: ids batch first, a bool mask is True where
attention is BLOCKED, a float mask is ADDED to the scores. ``CODES`` lists every finding.
"""

from course_lib.doctor.catalogue import CODES, Entry
from course_lib.doctor.causal_lm import check_causal_lm
from course_lib.doctor.core import check, check_batch
from course_lib.doctor.report import Finding, Report
from course_lib.doctor.setup import MASK_NAMES

__all__ = ["check", "check_batch", "check_causal_lm", "Finding", "Report", "CODES", "Entry",
           "MASK_NAMES"]
