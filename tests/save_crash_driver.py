"""Run by tests/test_checkpoint.py: a tiny run whose third checkpoint save stalls half-written,
so the test can SIGKILL it in the middle of a save."""
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pretrain.run.checkpoint as checkpoint  # noqa: E402
from pretrain.config import get_config  # noqa: E402
from pretrain.train import pretrain  # noqa: E402

saves = []
real_save = checkpoint.torch.save


def stalling_save(obj, f, *args, **kwargs):
    saves.append(1)
    if len(saves) == 3:
        f.write(b'PK\x03\x04 half a checkpoint')
        f.flush()
        time.sleep(600)  # killed here
    real_save(obj, f, *args, **kwargs)


checkpoint.torch.save = stalling_save
out = Path(sys.argv[1])
pretrain(get_config('tiny', steps=40, bs=16, num_workers=0, num_proc=1, device='cpu', save_points=[], save_every=4,
                    keep_last=5, export=False, data_dir=str(out / 'data'), checkpoint_dir=str(out / 'ckpt')))
