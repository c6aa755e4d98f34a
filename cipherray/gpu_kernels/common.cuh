// cipherray GPU kernels: portability layer.
// The same source compiles with NVRTC (CuPy RawModule) and with the host C++ compiler
// (g++ -O3 -shared -fPIC), so CPU tests run exactly the code the GPU runs.
#pragma once

#ifdef __CUDACC_RTC__
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef int int32_t;
typedef long long int64_t;
typedef signed char int8_t;
typedef unsigned char uint8_t;
#else
#include <stdint.h>
#endif

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define CR_DEVICE_BUILD 1
#define CR_HD __host__ __device__ __forceinline__
#else
#define __host__
#define __device__
#define CR_HD inline
#endif

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define CR_UNROLL _Pragma("unroll")
#define CR_NOUNROLL _Pragma("unroll 1")
#else
#define CR_UNROLL
#define CR_NOUNROLL
#endif

typedef long long cr_idx;

// One entry point per kernel body: a __global__ kernel on the device (one thread per
// work item), a plain C function looping over work items (OpenMP when available) on the host.
// PARAMS must end with `cr_idx count`; ARGS is the argument list of the body, where `idx`
// names the work item.
#ifdef CR_DEVICE_BUILD
#define CR_ENTRY(name, PARAMS, ARGS)                                          \
  extern "C" __global__ void name PARAMS {                                    \
    cr_idx idx = (cr_idx)blockIdx.x * blockDim.x + threadIdx.x;               \
    if (idx >= count) return;                                                 \
    name##_body ARGS;                                                         \
  }
#else
#define CR_ENTRY(name, PARAMS, ARGS)                                          \
  extern "C" void name PARAMS {                                               \
    _Pragma("omp parallel for schedule(dynamic, 16)")                         \
    for (cr_idx idx = 0; idx < count; idx++) name##_body ARGS;                \
  }
#endif
