"""Pictures and videos of frame sequences (:mod:`srvp.visualization.video`)."""

from srvp.visualization.video import (
    make_grid,
    make_image_grid,
    save_grid_png,
    to_uint8,
    write_gif,
    write_video,
)

__all__ = ["make_grid", "make_image_grid", "save_grid_png", "to_uint8", "write_gif", "write_video"]
