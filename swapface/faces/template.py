"""The canonical 68-point face shape that every aligned crop is fitted to.

Computed here by generalised Procrustes analysis over ~300 frontal frames of the development clips,
then made left-right symmetric. Coordinates are in a unit box: the 68 points span [0, 1] on both axes
(x from jaw edge to jaw edge, y from the top of the brows to the chin).
"""

from __future__ import annotations

import numpy as np

MEAN_FACE_68 = np.array([
    [0.0077, 0.1969], [0.0143, 0.3312], [0.0341, 0.4637], [0.061, 0.5928], [0.1046, 0.7148],
    [0.176, 0.8222], [0.2684, 0.9108], [0.3764, 0.9787], [0.5, 1.0], [0.6236, 0.9787],
    [0.7316, 0.9108], [0.824, 0.8222], [0.8954, 0.7148], [0.939, 0.5928], [0.9659, 0.4637],
    [0.9857, 0.3312], [0.9923, 0.1969], [0.0909, 0.0854], [0.1497, 0.0221], [0.2381, 0.0003],
    [0.3298, 0.0115], [0.4158, 0.0472], [0.5842, 0.0472], [0.6702, 0.0115], [0.7619, 0.0003],
    [0.8503, 0.0221], [0.9091, 0.0854], [0.5, 0.158], [0.5, 0.2449], [0.5, 0.3302], [0.5, 0.4186],
    [0.4042, 0.4879], [0.4505, 0.5043], [0.5, 0.5179], [0.5495, 0.5043], [0.5958, 0.4879],
    [0.1919, 0.1808], [0.2462, 0.1494], [0.311, 0.1501], [0.3684, 0.1906], [0.3078, 0.2031],
    [0.2427, 0.2035], [0.6316, 0.1906], [0.689, 0.1501], [0.7538, 0.1494], [0.8081, 0.1808],
    [0.7573, 0.2035], [0.6922, 0.2031], [0.32, 0.6742], [0.3843, 0.6308], [0.4514, 0.6089],
    [0.5, 0.6215], [0.5486, 0.6089], [0.6157, 0.6308], [0.68, 0.6742], [0.6181, 0.7392],
    [0.5531, 0.7673], [0.5, 0.7725], [0.4469, 0.7673], [0.3819, 0.7392], [0.3499, 0.6754],
    [0.4508, 0.6581], [0.5, 0.6622], [0.5492, 0.6581], [0.6501, 0.6754], [0.5503, 0.6977],
    [0.5, 0.7038], [0.4497, 0.6977],
], dtype=np.float64)

# Index of each point's mirror image (for horizontal flips of faces and landmarks).
FLIP_68 = np.array([
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
    27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52, 51,
    50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65,
])

# Landmark groups of the iBUG 68-point scheme.
JAW = slice(0, 17)
BROWS = slice(17, 27)
NOSE = slice(27, 36)
LEFT_EYE = slice(36, 42)  # subject's right eye, on the image's left
RIGHT_EYE = slice(42, 48)
MOUTH = slice(48, 68)
INNER_FACE = slice(17, 68)  # stable under pose: alignment fits these, not the jaw line
