"""``python -m dfn.pictures.curves``: series read from Lightning CSV logs, one panel per metric."""
import json

import numpy as np
from PIL import Image

from dfn.pictures.curves import main, read_series


def test_series_skip_other_rows_and_the_chart_has_a_panel_per_metric(tmp_path):
    log = tmp_path / "metrics.csv"
    log.write_text("epoch,step,train/loss,val/bce\n0,9,5.0,\n0,9,,7.5\n0,19,4.0,\n0,4,6.0,\n")
    assert read_series(log, "train/loss") == [(4, 6.0), (9, 5.0), (19, 4.0)]
    assert read_series(log, "val/bce") == [(9, 7.5)]
    main([str(log), str(log), "--labels", "a", "b", "--metric", "train/loss", "--metric", "val/bce",
          "--out", str(tmp_path / "c.png"), "--json", str(tmp_path / "c.json")])
    picture = np.asarray(Image.open(tmp_path / "c.png"))
    assert picture.shape == (600, 520, 3) and (picture != 255).any()
    assert json.loads((tmp_path / "c.json").read_text())["val/bce"]["b"] == [[9, 7.5]]
