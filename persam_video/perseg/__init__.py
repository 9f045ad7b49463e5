"""PerSeg, the photo benchmark of PerSAM: its folder layout and its evaluation (mIoU, mAcc)."""
