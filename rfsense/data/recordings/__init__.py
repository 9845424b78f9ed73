"""Raw recordings -> XRF55-shaped samples (numpy/scipy; csiread for WiFi formats, imported on use).

One module per format (`intel5300`, ...), the WiFi windowing shared by every WiFi reader (`wifi`), and the
gap-aware timeline under all of them (`timeline`): a window never bridges a long gap and never exists
where no record was taken.
"""

from __future__ import annotations
