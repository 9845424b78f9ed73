"""Raw recordings -> XRF55-shaped samples (numpy/scipy; csiread for the binary WiFi formats, imported on use).

One module per format (WiFi: `intel5300`, `atheros`, `nexmon`, `esp32`, `picoscenes`), the registry `rfsense
infer` uses (`formats`), the WiFi windowing shared by every WiFi reader (`wifi`), the 5300 subcarrier grid
and the frequency mapping onto it (`subcarriers`), record-framing checks of binary logs (`framing`), and the
gap-aware timeline under all of them (`timeline`): a window never bridges a long gap and never exists where
no record was taken.

Sessions put one capture per sensor on one timeline: the session file (`session_file`), each sensor's
records on the session timeline and its coverage of a window (`tracks`), windows of every sensor at the
same times (`session`), `rfsense convert` (`convert`) and the convert.json it writes (`mapping`).
"""

from __future__ import annotations
