"""The 478-point MediaPipe face scheme (468 mesh points + 10 iris points): its regions, and its
68-point iBUG view."""

from __future__ import annotations

import numpy as np

# The iBUG 68-point scheme drawn from the 468-point mesh, for the code that wants 68 (alignment
# template, tracking checks): eye and mouth corners are the same anatomical points; jaw and brow points
# are the mesh points nearest dlib's on average over 62 faces of the shared stills and clips (made
# left-right symmetric), which brought the mean gap to dlib from 2.6% to 2.2% of the face size.
MESH_TO_68 = np.array([
    127, 234, 93, 215, 138, 136, 149, 176, 152, 400, 378, 365, 367, 435, 323, 454, 356,  # jaw
    70, 63, 105, 66, 55, 285, 296, 334, 293, 300,  # brows
    168, 197, 5, 4, 75, 97, 2, 326, 305,  # nose
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # eyes
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,  # mouth
])
# Regions of the 478-point scheme (MediaPipe's FACEMESH_* connection sets, as ordered outlines).
FACE_OVAL = np.array([10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                      152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109])
LIPS_INNER = np.array([78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95])
LEFT_EYE_OUTLINE = np.array([33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7])
RIGHT_EYE_OUTLINE = np.array([362, 398, 384, 385, 386, 387, 388, 466, 263, 249, 390, 373, 374, 380, 381, 382])
LEFT_IRIS, RIGHT_IRIS = np.arange(468, 473), np.arange(473, 478)  # image-left eye first (centre, then rim)
