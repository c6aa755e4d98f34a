// ot_hash.cc built with VAES and AVX-512F: four AES blocks per instruction.
#include "ot_hash.cc"
