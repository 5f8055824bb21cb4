"""Calibration constants of the exogenous-series generators (generated file).

Statistics of one real year of hourly data, not the data: de_2025_hourly.csv
(2025, DE-LU day-ahead price and German hydropower generation, Bundesnetzagentur | SMARD.de,
CC BY 4.0), timestamps converted from UTC to Europe/Berlin local time; the 5
missing hydro hours were linearly interpolated for the calibration only.

Model (see ``generators.py``): ``series = profile * seasonal_level + AR(1) residual``.

* Price is divided by its annual mean (89.32 EUR/MWh): dimensionless, 1 = mean.
  ``PRICE_WEEKLY_PROFILE[h]``, h = hour of week (0 = Monday 00:00 local), least-squares factor
  on the seasonal level. ``PRICE_MONTHLY_LEVEL``: mean normalised price of each calendar month.
* Hydro is divided by its annual maximum (3069.7 MW): share in [0, 1].
  ``HYDRO_DAILY_PROFILE[h]``, h = local hour of day.
* ``*_MONTHLY_ANCHOR``: values at mid-month of the periodic piecewise-linear seasonal level
  whose monthly means equal ``*_MONTHLY_LEVEL`` (what the generators interpolate).
* ``*_RESIDUAL_AR_COEFFICIENT`` / ``*_RESIDUAL_INNOVATION_STD``: lag-1 autocorrelation of
  the residual and innovation std ``residual_std * sqrt(1 - coefficient^2)``.
* ``PRICE_STD``, ``PRICE_NEGATIVE_SHARE``, ``HYDRO_MEAN``, ``HYDRO_STD``: statistics of the
  normalised real series, used by tests to check generated series loosely.

Regenerate from the repository root with::

    .venv/bin/python scripts/calibrate_data.py --write
"""

PRICE_ANNUAL_MEAN_EUR_MWH = 89.3219
PRICE_STD = 0.5833
PRICE_NEGATIVE_SHARE = 0.0654
PRICE_WEEKLY_PROFILE = (
    0.9039, 0.8473, 0.8170, 0.8034, 0.8340, 0.9344, 1.1638, 1.4175, 1.4446, 1.1687, 0.9459, 0.7816,
    0.6733, 0.6487, 0.7194, 0.8731, 1.0524, 1.3282, 1.5078, 1.6067, 1.4990, 1.2534, 1.1157, 0.9919,
    0.9521, 0.8918, 0.8573, 0.8474, 0.8694, 0.9598, 1.1902, 1.4577, 1.4444, 1.1706, 0.9414, 0.8227,
    0.7288, 0.6886, 0.7429, 0.8975, 1.0797, 1.3564, 1.5565, 1.7119, 1.5789, 1.3398, 1.1844, 1.0436,
    0.9824, 0.9328, 0.9072, 0.8970, 0.9191, 1.0003, 1.2042, 1.4333, 1.4416, 1.2120, 0.9825, 0.8519,
    0.7577, 0.7432, 0.7862, 0.9473, 1.1403, 1.3669, 1.5268, 1.6154, 1.4819, 1.2922, 1.1579, 1.0316,
    0.9848, 0.9382, 0.9111, 0.8950, 0.9124, 0.9849, 1.1925, 1.3546, 1.3482, 1.1534, 0.9530, 0.7887,
    0.6961, 0.6465, 0.6973, 0.8539, 0.9955, 1.1999, 1.3983, 1.5037, 1.4113, 1.2459, 1.1561, 1.0234,
    0.9830, 0.9216, 0.8905, 0.8775, 0.9018, 0.9869, 1.1804, 1.3483, 1.3477, 1.1418, 0.9194, 0.7581,
    0.6806, 0.6494, 0.6793, 0.7925, 0.9732, 1.2294, 1.3833, 1.4336, 1.3558, 1.2277, 1.1293, 1.0183,
    0.9995, 0.9479, 0.9204, 0.9023, 0.9018, 0.9102, 0.9336, 0.9561, 0.9292, 0.7645, 0.5829, 0.5027,
    0.4462, 0.3974, 0.4396, 0.5674, 0.7024, 0.9612, 1.1944, 1.2668, 1.2355, 1.1572, 1.0943, 0.9942,
    0.9500, 0.8905, 0.8558, 0.8357, 0.8374, 0.8433, 0.8299, 0.8152, 0.7436, 0.6214, 0.5275, 0.4522,
    0.3471, 0.2639, 0.2931, 0.4581, 0.6459, 0.8945, 1.1425, 1.2071, 1.1730, 1.1052, 1.0555, 0.9362,
)
PRICE_MONTHLY_LEVEL = (
    1.2779, 1.4389, 1.0605, 0.8725, 0.7539, 0.7164, 0.9829, 0.8619, 0.9349, 0.9449, 1.1406, 1.0464,
)
PRICE_MONTHLY_ANCHOR = (
    1.2835, 1.5298, 1.0099, 0.8699, 0.7512, 0.6534, 1.0677, 0.8107, 0.9613, 0.8975, 1.2065, 0.9796,
)
PRICE_RESIDUAL_AR_COEFFICIENT = 0.9001
PRICE_RESIDUAL_INNOVATION_STD = 0.2021

HYDRO_ANNUAL_MAX_MW = 3069.7300
HYDRO_MEAN = 0.5254
HYDRO_STD = 0.1125
HYDRO_DAILY_PROFILE = (
    0.9421, 0.9293, 0.9239, 0.9236, 0.9307, 0.9488, 1.0026, 1.0504, 1.0468, 1.0173, 0.9973, 0.9848,
    0.9707, 0.9679, 0.9656, 0.9788, 1.0016, 1.0425, 1.0821, 1.1133, 1.1079, 1.0647, 1.0175, 0.9631,
)
HYDRO_MONTHLY_LEVEL = (
    0.5753, 0.5341, 0.4264, 0.4560, 0.5161, 0.6091, 0.6160, 0.6413, 0.5491, 0.4913, 0.4944, 0.3968,
)
HYDRO_MONTHLY_ANCHOR = (
    0.6212, 0.5413, 0.4009, 0.4566, 0.5075, 0.6261, 0.6063, 0.6640, 0.5421, 0.4772, 0.5228, 0.3379,
)
HYDRO_RESIDUAL_AR_COEFFICIENT = 0.9100
HYDRO_RESIDUAL_INNOVATION_STD = 0.0330
