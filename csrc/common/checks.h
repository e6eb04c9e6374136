// Argument checks for the torch-facing entry points: every message names the argument and the
// sizes it actually had. Python validates first with friendlier errors; these guard direct _C use.
#pragma once

#include <ATen/ATen.h>

#define EIRNN_CHECK_DIM(x, d, what) \
  TORCH_CHECK((x).dim() == (d), #x " must be " what ", got shape ", (x).sizes())
#define EIRNN_CHECK_SHAPE(x, ...)                                                  \
  TORCH_CHECK((x).sizes() == at::IntArrayRef({__VA_ARGS__}), #x " must have shape ", \
              at::IntArrayRef({__VA_ARGS__}), ", got ", (x).sizes())
#define EIRNN_CHECK_FLOAT(x)                                                             \
  TORCH_CHECK((x).scalar_type() == at::kFloat || (x).scalar_type() == at::kDouble, #x \
              " must be float32 or float64, got ", (x).scalar_type())
#define EIRNN_CHECK_SAME(x, ref)                                                              \
  TORCH_CHECK((x).scalar_type() == (ref).scalar_type(), #x " has dtype ", (x).scalar_type(), \
              " but " #ref " has ", (ref).scalar_type());                                     \
  TORCH_CHECK((x).device() == (ref).device(), #x " is on ", (x).device(), " but " #ref " is on ", \
              (ref).device())
