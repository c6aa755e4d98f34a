// bit_transpose.cc built with AVX-512F/BW: 64 rows a movemask.
#include "bit_transpose.cc"
