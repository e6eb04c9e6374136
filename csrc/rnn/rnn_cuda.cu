// CUDA kernels of the fused E-I recurrence: one persistent launch per direction.
//
// Batch rows are independent for the whole sequence, so each block owns `R` rows and runs all T
// steps without any inter-block communication. Per step a thread owns one (row, unit) item (or a
// few), so its state stays in a register; the softplus tile (forward) or the a*g tile (backward) is
// exchanged through double-buffered shared memory, which needs one __syncthreads per step.
// W^T (forward) / W (backward) sit in shared memory when they fit (N = 256 float: 256 KB does not;
// then they are read through the read-only L1/L2 path, still on chip for the whole sequence).
//
// Raw pointers and cudaStream_t only: no torch headers, so CI compile-checks this file with nvcc.
#include <cuda_runtime.h>

#include <algorithm>

#include "common/math.h"
#include "rnn/rnn.h"

namespace eirnn_fast {
namespace rnn {
namespace {

constexpr int kMaxItemsPerThread = 4;  // (row, unit) items owned by one thread
constexpr int kMaxThreads = 512;

struct LaunchShape {
  int rows;     // batch rows per block
  int threads;  // threads per block
  int blocks;
};

inline int round_up(int v, int m) { return (v + m - 1) / m * m; }

// Enough blocks to fill the GPU (about two per SM) while giving each block a tile that keeps its
// threads busy: R rows * N units items, at most kMaxItemsPerThread per thread.
LaunchShape choose_shape(int64_t B, int64_t N, int num_sms) {
  LaunchShape s;
  const int64_t target_blocks = 2LL * std::max(num_sms, 1);
  int rows = static_cast<int>((B + target_blocks - 1) / target_blocks);
  rows = std::max(1, std::min(rows, 8));
  while (rows > 1 && rows * N > static_cast<int64_t>(kMaxThreads) * kMaxItemsPerThread) --rows;
  const int items = static_cast<int>(rows * N);
  const int per_thread = (items + kMaxThreads - 1) / kMaxThreads;
  s.rows = rows;
  s.threads = std::min(kMaxThreads, round_up((items + per_thread - 1) / per_thread, 32));
  s.blocks = static_cast<int>((B + rows - 1) / rows);
  return s;
}

// sum_k m[k * N + col] * v[k]: one column of a row-major [N, N] matrix against a vector held in
// shared memory. Consecutive threads take consecutive columns, so the matrix reads are
// conflict-free (shared memory) or coalesced (global, through the read-only cache); v[k] is a
// broadcast. Four partial sums shorten the dependent FMA chain.
template <typename T, bool kSmem>
__device__ __forceinline__ T column_dot(const T* __restrict__ m, const T* __restrict__ v, int N,
                                        int col) {
  auto at = [&](int k) { return kSmem ? m[k * N + col] : __ldg(m + k * N + col); };
  T acc0 = T(0), acc1 = T(0), acc2 = T(0), acc3 = T(0);
  int k = 0;
  for (; k + 3 < N; k += 4) {
    acc0 = fma(at(k + 0), v[k + 0], acc0);
    acc1 = fma(at(k + 1), v[k + 1], acc1);
    acc2 = fma(at(k + 2), v[k + 2], acc2);
    acc3 = fma(at(k + 3), v[k + 3], acc3);
  }
  for (; k < N; ++k) acc0 = fma(at(k), v[k], acc0);
  return (acc0 + acc1) + (acc2 + acc3);
}

// Forward. Shared memory: [W^T N*N if kWSmem] [s 2*R*N] [a N].
template <typename T, bool kWSmem>
__global__ void __launch_bounds__(kMaxThreads)
    scan_forward_kernel(const T* __restrict__ drive, const T* __restrict__ x0,
                        const T* __restrict__ wt, const T* __restrict__ alpha,
                        T* __restrict__ states, int B, int Tn, int N, int R) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sm = reinterpret_cast<T*>(smem_raw);
  T* w_s = sm;                             // [N, N]: w_s[k * N + n] = W[n, k]
  T* s_buf = sm + (kWSmem ? N * N : 0);    // [2][R * N]
  T* a_s = s_buf + 2 * R * N;              // [N]

  const int b0 = blockIdx.x * R;
  const int rows = min(R, B - b0);
  const int items = rows * N;
  const int tid = threadIdx.x;

  if (kWSmem)
    for (int i = tid; i < N * N; i += blockDim.x) w_s[i] = wt[i];
  for (int i = tid; i < N; i += blockDim.x) a_s[i] = alpha[i];

  // Each thread owns items tid, tid + blockDim, ... (at most kMaxItemsPerThread).
  T x_reg[kMaxItemsPerThread];
#pragma unroll
  for (int j = 0; j < kMaxItemsPerThread; ++j) {
    const int i = tid + j * blockDim.x;
    if (i < items) {
      const int r = i / N, n = i % N;
      x_reg[j] = x0[static_cast<int64_t>(b0 + r) * N + n];
      s_buf[i] = softplus(x_reg[j]);
    }
  }
  __syncthreads();

  const T* wsrc = kWSmem ? w_s : wt;
  for (int t = 0; t < Tn; ++t) {
    const T* s_cur = s_buf + (t & 1) * R * N;
    T* s_nxt = s_buf + ((t + 1) & 1) * R * N;
#pragma unroll
    for (int j = 0; j < kMaxItemsPerThread; ++j) {
      const int i = tid + j * blockDim.x;
      if (i < items) {
        const int r = i / N, n = i % N;
        const T h = column_dot<T, kWSmem>(wsrc, s_cur + r * N, N, n);  // (W softplus(x))[n]
        const int64_t off = (static_cast<int64_t>(b0 + r) * Tn + t) * N + n;
        const T a = a_s[n];
        const T xn = (T(1) - a) * x_reg[j] + a * h + drive[off];
        x_reg[j] = xn;
        states[off] = xn;
        s_nxt[i] = softplus(xn);
      }
    }
    __syncthreads();  // s_nxt complete before anyone reads it; s_cur free for step t + 2
  }
}

// Backward. Shared memory: [W N*N if kWSmem] [v 2*R*N] [a N]. Thread item (r, k) carries
// c = dL/dx_{t-1} (without the direct gradient) in a register:
//   g_t = grad_t + c;  d_drive_t = g_t;  v = a * g_t
//   c  <- (1 - a) * g_t + softplus'(x_{t-1}) * (W^T v)
template <typename T, bool kWSmem>
__global__ void __launch_bounds__(kMaxThreads)
    scan_backward_kernel(const T* __restrict__ grad, const T* __restrict__ x0,
                         const T* __restrict__ w, const T* __restrict__ alpha,
                         const T* __restrict__ states, T* __restrict__ d_drive,
                         T* __restrict__ d_x0, int B, int Tn, int N, int R) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sm = reinterpret_cast<T*>(smem_raw);
  T* w_s = sm;                            // [N, N] row-major W
  T* v_buf = sm + (kWSmem ? N * N : 0);   // [2][R * N]
  T* a_s = v_buf + 2 * R * N;             // [N]

  const int b0 = blockIdx.x * R;
  const int rows = min(R, B - b0);
  const int items = rows * N;
  const int tid = threadIdx.x;

  if (kWSmem)
    for (int i = tid; i < N * N; i += blockDim.x) w_s[i] = w[i];
  for (int i = tid; i < N; i += blockDim.x) a_s[i] = alpha[i];
  __syncthreads();

  const T* wsrc = kWSmem ? w_s : w;
  T c_reg[kMaxItemsPerThread];
  T g_reg[kMaxItemsPerThread];
#pragma unroll
  for (int j = 0; j < kMaxItemsPerThread; ++j) c_reg[j] = T(0);

  for (int t = Tn - 1; t >= 0; --t) {
    T* v = v_buf + (t & 1) * R * N;
#pragma unroll
    for (int j = 0; j < kMaxItemsPerThread; ++j) {
      const int i = tid + j * blockDim.x;
      if (i < items) {
        const int r = i / N, k = i % N;
        const int64_t off = (static_cast<int64_t>(b0 + r) * Tn + t) * N + k;
        const T g = grad[off] + c_reg[j];
        g_reg[j] = g;
        d_drive[off] = g;
        v[i] = a_s[k] * g;
      }
    }
    __syncthreads();  // v complete; the other buffer is free for step t - 1
#pragma unroll
    for (int j = 0; j < kMaxItemsPerThread; ++j) {
      const int i = tid + j * blockDim.x;
      if (i < items) {
        const int r = i / N, k = i % N;
        const T wtv = column_dot<T, kWSmem>(wsrc, v + r * N, N, k);  // (W^T v)[k]
        const T x_prev = t > 0 ? states[(static_cast<int64_t>(b0 + r) * Tn + (t - 1)) * N + k]
                               : x0[static_cast<int64_t>(b0 + r) * N + k];
        c_reg[j] = (T(1) - a_s[k]) * g_reg[j] + softplus_grad(x_prev) * wtv;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kMaxItemsPerThread; ++j) {
    const int i = tid + j * blockDim.x;
    if (i < items) {
      const int r = i / N, k = i % N;
      d_x0[static_cast<int64_t>(b0 + r) * N + k] = c_reg[j];
    }
  }
}

// Shared-memory plan for one launch: whether W fits next to the tiles, and the bytes to request.
template <typename T>
cudaError_t plan(int64_t B, int64_t N, LaunchShape* shape, bool* w_smem, size_t* smem) {
  int dev = 0, num_sms = 1, max_optin = 48 * 1024;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, dev);
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (err != cudaSuccess) return err;
  *shape = choose_shape(B, N, num_sms);
  const size_t tiles = (2 * static_cast<size_t>(shape->rows) * N + N) * sizeof(T);
  const size_t with_w = tiles + static_cast<size_t>(N) * N * sizeof(T);
  *w_smem = with_w <= static_cast<size_t>(max_optin);
  *smem = *w_smem ? with_w : tiles;
  return cudaSuccess;
}

// Plans the launch (rows per block, W in shared memory or not) and launches the matching
// instantiation; `args` are the kernel arguments after the pointers' common tail (B, T, N, R).
template <typename T, typename... Ptrs>
cudaError_t launch(void (*smem_kernel)(Ptrs..., int, int, int, int),
                   void (*global_kernel)(Ptrs..., int, int, int, int), int64_t B, int64_t T_steps,
                   int64_t N, cudaStream_t stream, Ptrs... ptrs) {
  if (N > kCudaMaxUnits || N < 1 || B < 1 || T_steps < 1) return cudaErrorInvalidValue;
  LaunchShape shape;
  bool w_smem = false;
  size_t smem = 0;
  cudaError_t err = plan<T>(B, N, &shape, &w_smem, &smem);
  if (err != cudaSuccess) return err;
  auto kernel = w_smem ? smem_kernel : global_kernel;
  if (smem > 48 * 1024) {
    err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  kernel<<<shape.blocks, shape.threads, smem, stream>>>(ptrs..., static_cast<int>(B), static_cast<int>(T_steps),
                                                        static_cast<int>(N), shape.rows);
  return cudaGetLastError();
}

}  // namespace

template <typename T>
int scan_forward_cuda(const T* drive, const T* x0, const T* wt, const T* alpha, T* states,
                      int64_t B, int64_t T_steps, int64_t N, CUstream_st* stream) {
  return launch<T, const T*, const T*, const T*, const T*, T*>(
      scan_forward_kernel<T, true>, scan_forward_kernel<T, false>, B, T_steps, N, stream, drive, x0, wt,
      alpha, states);
}

template <typename T>
int scan_backward_cuda(const T* grad, const T* x0, const T* w, const T* alpha, const T* states,
                       T* d_drive, T* d_x0, int64_t B, int64_t T_steps, int64_t N,
                       CUstream_st* stream) {
  return launch<T, const T*, const T*, const T*, const T*, const T*, T*, T*>(
      scan_backward_kernel<T, true>, scan_backward_kernel<T, false>, B, T_steps, N, stream, grad, x0, w,
      alpha, states, d_drive, d_x0);
}

template int scan_forward_cuda<float>(const float*, const float*, const float*, const float*,
                                      float*, int64_t, int64_t, int64_t, CUstream_st*);
template int scan_forward_cuda<double>(const double*, const double*, const double*,
                                       const double*, double*, int64_t, int64_t, int64_t,
                                       CUstream_st*);
template int scan_backward_cuda<float>(const float*, const float*, const float*, const float*,
                                       const float*, float*, float*, int64_t, int64_t, int64_t,
                                       CUstream_st*);
template int scan_backward_cuda<double>(const double*, const double*, const double*,
                                        const double*, const double*, double*, double*, int64_t,
                                        int64_t, int64_t, CUstream_st*);

}  // namespace rnn
}  // namespace eirnn_fast
