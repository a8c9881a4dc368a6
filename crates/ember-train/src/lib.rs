//! Optimizers, schedules, EMA, gradient clipping, mixup/cutmix, metrics and the resumable train/eval loop
