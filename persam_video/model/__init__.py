"""SAM itself: loading checkpoints (vit_h/l/b, MobileSAM's vit_t, SAM 2.1's hiera sizes behind SAM's
interface, the bundled small model), the per-frame predictor with its store of encoded frames, and
the opt-in fast path (reduced precision, fused attention, a reordered decoder) that leaves the exact
path untouched."""
