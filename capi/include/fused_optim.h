/* fused_optim.h: C interface to fused-optim (libfused_optim_capi.a).
 *
 * Fused optimizer steps over float arrays with PyTorch's (torch.optim) hyperparameter names,
 * defaults, validation and order of operations; the same bits as the Rust crate on every
 * backend. No allocation; no function unwinds or panics.
 *
 * For each optimizer X (sgd, adam, adagrad, adadelta, rmsprop, adamax, nadam, radam, lion, rprop,
 * asgd):
 *   FoX    fo_X_default(void)                       torch's defaults
 *   int    fo_X_validate(const FoX *opt)            FO_OK or the first error
 *   size_t fo_X_state_len(const FoX *opt, size_t n) state floats for n parameters (0 if opt is NULL)
 *   int    fo_X_init_state(const FoX *opt, float *state, size_t state_len)   a fresh state
 *   int    fo_X_step(const FoX *opt, uint64_t step, float *params, const float *grads,
 *                    size_t n, float *state, size_t state_len)              one step
 *   int    fo_X_init_state_ex(const FoX *opt, const FoState *state)      a fresh state, any format
 *   int    fo_X_step_ex(const FoX *opt, uint64_t step, const FoPiece *piece)
 *                                                   one step on a piece of a tensor, any format
 * X is also torchao_adam (torchao's low-bit Adam/AdamW: FoTorchaoAdam, fo_torchao_*_default).
 * sparse_adam (torch.optim.SparseAdam: FoSparseAdam) has default, validate, state_len and
 * init_state, and fo_sparse_adam_step over the rows of a table that a sparse gradient touches.
 * Steps are numbered from 1. NAdam's and ASGD's steps also take their scalar state (see
 * fo_nadam_step, fo_asgd_step). Rprop's fresh state is not zeros: use fo_rprop_init_state.
 * Boolean options are int32_t: nonzero means true.
 *
 * Pointers: params and grads hold n floats, state holds state_len floats; each may be NULL only
 * when its length is 0; all must be aligned for float and must not overlap (FO_ERR_OVERLAP).
 * On any error nothing is written.
 *
 * Storage formats (the _ex functions): parameters in f32, bf16 or f16 (bf16 also with
 * stochastic rounding or a Kahan compensation buffer), gradients in f32, bf16 or f16, state in
 * f32, bf16, f16, or torchao's block-quantized int8, int4 and float8 (codes plus one float scale
 * per block). bf16 and f16 values are uint16_t bit patterns. Every element is computed in f32 by
 * the same kernel and rounded once per store; see the Rust crate's docs (Params, State).
 * fo_state_layout gives the state buffer sizes; buffers must be aligned for their element type.
 */
#ifndef FUSED_OPTIM_H
#define FUSED_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#if defined(__cplusplus)
#define FO_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define FO_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
#define FO_OK (0)                          /* success */
#define FO_ERR_POINTER (-1)                /* NULL pointer with a nonzero length, or misaligned */
#define FO_ERR_INVALID_HYPERPARAMETER (-2) /* outside the range torch accepts, or NaN */
#define FO_ERR_INVALID_COMBINATION (-3)    /* e.g. Nesterov without momentum */
#define FO_ERR_INVALID_STEP (-4)           /* step 0: steps are numbered from 1 */
#define FO_ERR_LENGTH (-5)                 /* state_len != fo_X_state_len(opt, n), or too large */
#define FO_ERR_OVERLAP (-6)                /* params, grads and state overlap */
#define FO_ERR_OTHER (-7)                  /* any other error (not produced by the optimizers) */
#define FO_ERR_MISALIGNED (-8)             /* piece offset not a multiple of the state's block */
#define FO_ERR_FORMAT (-9)                 /* unknown FO_PARAM_* / FO_GRAD_* / FO_STATE_* code */
#define FO_ERR_INDEX (-10)                 /* row index out of range, or not sorted and unique */

/* A static, NUL-terminated description of a status code (never NULL). */
const char *fo_status_message(int status);

/* Storage formats. Struct fields and arguments that take these codes are int32_t. */
typedef enum FoParamFormat {
    FO_PARAM_F32 = 0,        /* float */
    FO_PARAM_BF16 = 1,       /* bf16 bits (uint16_t), round to nearest even */
    FO_PARAM_F16 = 2,        /* f16 bits (uint16_t), round to nearest even */
    FO_PARAM_BF16_SR = 3,    /* bf16, stochastic rounding keyed by FoPiece.seed */
    FO_PARAM_BF16_KAHAN = 4  /* bf16 with a bf16 Kahan compensation buffer (FoPiece.compensation) */
} FoParamFormat;

typedef enum FoGradFormat {
    FO_GRAD_F32 = 0,  /* float */
    FO_GRAD_BF16 = 1, /* bf16 bits (uint16_t) */
    FO_GRAD_F16 = 2   /* f16 bits (uint16_t) */
} FoGradFormat;

typedef enum FoStateFormat {
    FO_STATE_F32 = 0,  /* float values */
    FO_STATE_BF16 = 1, /* bf16 bits (uint16_t), round to nearest even */
    FO_STATE_F16 = 2,  /* f16 bits (uint16_t), round to nearest even */
    FO_STATE_INT8 = 3, /* torchao 8-bit codes, one float scale per 256 values */
    FO_STATE_INT4 = 4, /* torchao 4-bit codes, two per byte (first in the high nibble), a scale per 128 */
    FO_STATE_FP8 = 5   /* float8 e4m3fn codes, one float scale per 256 values */
} FoStateFormat;

/* Buffer sizes of one tensor's state (fo_state_layout). */
typedef struct FoStateLayout {
    size_t values; /* elements of FoState.values (element formats) */
    size_t codes;  /* bytes of FoState.codes (block formats) */
    size_t scales; /* floats of FoState.scales (block formats) */
    size_t block;  /* values per block (1 for element formats); a piece's offset is a multiple */
} FoStateLayout;
FO_STATIC_ASSERT(sizeof(FoStateLayout) == 4 * sizeof(size_t), "FoStateLayout layout");

/* Sizes for `planes` state planes of n values (an optimizer's planes: fo_X_state_len(opt, 1)),
   planes stored one after another in each buffer. FO_OK, FO_ERR_FORMAT or FO_ERR_POINTER. */
int fo_state_layout(int32_t state_format, size_t planes, size_t n, FoStateLayout *layout);

/* One tensor's (or piece's) state. Buffers the format does not use must have length 0. Zeroed
   buffers are a fresh state in every format (fo_X_init_state_ex writes Adagrad's initial value). */
typedef struct FoState {
    void *values;      /* FO_STATE_F32: float; FO_STATE_BF16 / F16: uint16_t */
    size_t values_len; /* elements */
    uint8_t *codes;    /* block formats */
    size_t codes_len;  /* bytes */
    float *scales;     /* block formats: one per block */
    size_t scales_len; /* floats */
    int32_t format;    /* FoStateFormat */
} FoState;
FO_STATIC_ASSERT(sizeof(FoState) == 6 * sizeof(size_t) + (sizeof(size_t) == 8 ? 8 : 4), "FoState layout");

/* One piece of one tensor: n parameters starting at element `offset` of the whole tensor (0 for a
   whole tensor; a multiple of the state's block, else FO_ERR_MISALIGNED), with their gradients
   and their own state (laid out for this piece's n). Stochastic rounding draws element
   offset + i's random bits from a stream keyed by seed and counted by step, so any split of a
   tensor into pieces gives the same bits. */
typedef struct FoPiece {
    uint64_t seed;          /* FO_PARAM_BF16_SR: keep it across steps; otherwise ignored */
    void *params;           /* n float (FO_PARAM_F32) or uint16_t */
    uint16_t *compensation; /* FO_PARAM_BF16_KAHAN: n bf16 (zeros to start); otherwise ignored */
    const void *grads;      /* n float (FO_GRAD_F32) or uint16_t */
    size_t n;
    size_t offset;
    FoState state;
    int32_t param_format;   /* FoParamFormat */
    int32_t grad_format;    /* FoGradFormat */
} FoPiece;
FO_STATIC_ASSERT(sizeof(FoPiece) == 8 + 5 * sizeof(size_t) + sizeof(FoState) + 8, "FoPiece layout");

/* torch.optim.SGD's hyperparameters. */
typedef struct FoSgd {
    double lr;
    double momentum;
    double dampening;
    double weight_decay;
    int32_t nesterov;
    int32_t maximize;
} FoSgd;
FO_STATIC_ASSERT(sizeof(FoSgd) == 40, "FoSgd layout");

FoSgd fo_sgd_default(void);
int fo_sgd_validate(const FoSgd *opt);
size_t fo_sgd_state_len(const FoSgd *opt, size_t n);
int fo_sgd_init_state(const FoSgd *opt, float *state, size_t state_len);
int fo_sgd_init_state_ex(const FoSgd *opt, const FoState *state);
int fo_sgd_step(const FoSgd *opt, uint64_t step, float *params, const float *grads,
                size_t n, float *state, size_t state_len);
int fo_sgd_step_ex(const FoSgd *opt, uint64_t step, const FoPiece *piece);

/* torch.optim.Adam / AdamW hyperparameters (AdamW: fo_adamw_default()). */
typedef struct FoAdam {
    double lr;
    double beta1;
    double beta2;
    double eps;
    double weight_decay;
    int32_t amsgrad;
    int32_t maximize;
    int32_t decoupled_weight_decay;
} FoAdam;
FO_STATIC_ASSERT(sizeof(FoAdam) == 56, "FoAdam layout");

FoAdam fo_adam_default(void);
FoAdam fo_adamw_default(void); /* torch.optim.AdamW: decoupled weight decay 1e-2 */
int fo_adam_validate(const FoAdam *opt);
size_t fo_adam_state_len(const FoAdam *opt, size_t n);
int fo_adam_init_state(const FoAdam *opt, float *state, size_t state_len);
int fo_adam_init_state_ex(const FoAdam *opt, const FoState *state);
int fo_adam_step(const FoAdam *opt, uint64_t step, float *params, const float *grads,
                 size_t n, float *state, size_t state_len);
int fo_adam_step_ex(const FoAdam *opt, uint64_t step, const FoPiece *piece);

/* torch.optim.Adagrad's hyperparameters. */
typedef struct FoAdagrad {
    double lr;
    double lr_decay;
    double weight_decay;
    double initial_accumulator_value;
    double eps;
    int32_t maximize;
} FoAdagrad;
FO_STATIC_ASSERT(sizeof(FoAdagrad) == 48, "FoAdagrad layout");

FoAdagrad fo_adagrad_default(void);
int fo_adagrad_validate(const FoAdagrad *opt);
size_t fo_adagrad_state_len(const FoAdagrad *opt, size_t n);
int fo_adagrad_init_state(const FoAdagrad *opt, float *state, size_t state_len);
int fo_adagrad_init_state_ex(const FoAdagrad *opt, const FoState *state);
int fo_adagrad_step(const FoAdagrad *opt, uint64_t step, float *params, const float *grads,
                    size_t n, float *state, size_t state_len);
int fo_adagrad_step_ex(const FoAdagrad *opt, uint64_t step, const FoPiece *piece);

/* torch.optim.Adadelta's hyperparameters. */
typedef struct FoAdadelta {
    double lr;
    double rho;
    double eps;
    double weight_decay;
    int32_t maximize;
} FoAdadelta;
FO_STATIC_ASSERT(sizeof(FoAdadelta) == 40, "FoAdadelta layout");

FoAdadelta fo_adadelta_default(void);
int fo_adadelta_validate(const FoAdadelta *opt);
size_t fo_adadelta_state_len(const FoAdadelta *opt, size_t n);
int fo_adadelta_init_state(const FoAdadelta *opt, float *state, size_t state_len);
int fo_adadelta_init_state_ex(const FoAdadelta *opt, const FoState *state);
int fo_adadelta_step(const FoAdadelta *opt, uint64_t step, float *params, const float *grads,
                     size_t n, float *state, size_t state_len);
int fo_adadelta_step_ex(const FoAdadelta *opt, uint64_t step, const FoPiece *piece);

/* torch.optim.RMSprop's hyperparameters. */
typedef struct FoRmsprop {
    double lr;
    double alpha;
    double eps;
    double weight_decay;
    double momentum;
    int32_t centered;
    int32_t maximize;
} FoRmsprop;
FO_STATIC_ASSERT(sizeof(FoRmsprop) == 48, "FoRmsprop layout");

FoRmsprop fo_rmsprop_default(void);
int fo_rmsprop_validate(const FoRmsprop *opt);
size_t fo_rmsprop_state_len(const FoRmsprop *opt, size_t n);
int fo_rmsprop_init_state(const FoRmsprop *opt, float *state, size_t state_len);
int fo_rmsprop_init_state_ex(const FoRmsprop *opt, const FoState *state);
int fo_rmsprop_step(const FoRmsprop *opt, uint64_t step, float *params, const float *grads,
                    size_t n, float *state, size_t state_len);
int fo_rmsprop_step_ex(const FoRmsprop *opt, uint64_t step, const FoPiece *piece);

/* torch.optim.Adamax's hyperparameters. */
typedef struct FoAdamax {
    double lr;
    double beta1;
    double beta2;
    double eps;
    double weight_decay;
    int32_t maximize;
} FoAdamax;
FO_STATIC_ASSERT(sizeof(FoAdamax) == 48, "FoAdamax layout");

FoAdamax fo_adamax_default(void);
int fo_adamax_validate(const FoAdamax *opt);
size_t fo_adamax_state_len(const FoAdamax *opt, size_t n);
int fo_adamax_init_state(const FoAdamax *opt, float *state, size_t state_len);
int fo_adamax_init_state_ex(const FoAdamax *opt, const FoState *state);
int fo_adamax_step(const FoAdamax *opt, uint64_t step, float *params, const float *grads,
                   size_t n, float *state, size_t state_len);
int fo_adamax_step_ex(const FoAdamax *opt, uint64_t step, const FoPiece *piece);

/* torch.optim.NAdam's hyperparameters. */
typedef struct FoNadam {
    double lr;
    double beta1;
    double beta2;
    double eps;
    double weight_decay;
    double momentum_decay;
    int32_t decoupled_weight_decay;
    int32_t maximize;
} FoNadam;
FO_STATIC_ASSERT(sizeof(FoNadam) == 56, "FoNadam layout");

FoNadam fo_nadam_default(void);
int fo_nadam_validate(const FoNadam *opt);
size_t fo_nadam_state_len(const FoNadam *opt, size_t n);
int fo_nadam_init_state(const FoNadam *opt, float *state, size_t state_len);
int fo_nadam_init_state_ex(const FoNadam *opt, const FoState *state);

/* NAdam's scalar state, shared by every tensor of a step. */
typedef struct FoNadamScalars {
    float mu_product; /* product of the momentum coefficients so far; 1 before step 1 */
} FoNadamScalars;
FO_STATIC_ASSERT(sizeof(FoNadamScalars) == 4, "FoNadamScalars layout");

FoNadamScalars fo_nadam_scalars_default(void);
/* Pass the same *scalars for every tensor of step `step`; on success *scalars_after (may be
   NULL) receives the scalar state for step + 1. */
int fo_nadam_step(const FoNadam *opt, uint64_t step, const FoNadamScalars *scalars,
                  FoNadamScalars *scalars_after, float *params, const float *grads, size_t n,
                  float *state, size_t state_len);
int fo_nadam_step_ex(const FoNadam *opt, uint64_t step, const FoNadamScalars *scalars,
                     FoNadamScalars *scalars_after, const FoPiece *piece);

/* torch.optim.RAdam's hyperparameters. */
typedef struct FoRadam {
    double lr;
    double beta1;
    double beta2;
    double eps;
    double weight_decay;
    int32_t decoupled_weight_decay;
    int32_t maximize;
} FoRadam;
FO_STATIC_ASSERT(sizeof(FoRadam) == 48, "FoRadam layout");

FoRadam fo_radam_default(void);
int fo_radam_validate(const FoRadam *opt);
size_t fo_radam_state_len(const FoRadam *opt, size_t n);
int fo_radam_init_state(const FoRadam *opt, float *state, size_t state_len);
int fo_radam_init_state_ex(const FoRadam *opt, const FoState *state);
int fo_radam_step(const FoRadam *opt, uint64_t step, float *params, const float *grads,
                  size_t n, float *state, size_t state_len);
int fo_radam_step_ex(const FoRadam *opt, uint64_t step, const FoPiece *piece);

/* Lion's hyperparameters (Chen et al. 2023). */
typedef struct FoLion {
    double lr;
    double beta1;
    double beta2;
    double weight_decay;
    int32_t maximize;
} FoLion;
FO_STATIC_ASSERT(sizeof(FoLion) == 40, "FoLion layout");

FoLion fo_lion_default(void);
int fo_lion_validate(const FoLion *opt);
size_t fo_lion_state_len(const FoLion *opt, size_t n);
int fo_lion_init_state(const FoLion *opt, float *state, size_t state_len);
int fo_lion_init_state_ex(const FoLion *opt, const FoState *state);
int fo_lion_step(const FoLion *opt, uint64_t step, float *params, const float *grads,
                 size_t n, float *state, size_t state_len);
int fo_lion_step_ex(const FoLion *opt, uint64_t step, const FoPiece *piece);

/* torch.optim.Rprop's hyperparameters (etas = (eta_minus, eta_plus), step_sizes = (min, max)).
   State: prev, then step_size (2 planes). A fresh state has step_size = lr, not zeros: write it
   with fo_rprop_init_state / fo_rprop_init_state_ex. */
typedef struct FoRprop {
    double lr;
    double eta_minus;
    double eta_plus;
    double step_size_min;
    double step_size_max;
    int32_t maximize;
} FoRprop;
FO_STATIC_ASSERT(sizeof(FoRprop) == 48, "FoRprop layout");

FoRprop fo_rprop_default(void);
int fo_rprop_validate(const FoRprop *opt);
size_t fo_rprop_state_len(const FoRprop *opt, size_t n);
int fo_rprop_init_state(const FoRprop *opt, float *state, size_t state_len);
int fo_rprop_init_state_ex(const FoRprop *opt, const FoState *state);
int fo_rprop_step(const FoRprop *opt, uint64_t step, float *params, const float *grads,
                  size_t n, float *state, size_t state_len);
int fo_rprop_step_ex(const FoRprop *opt, uint64_t step, const FoPiece *piece);

/* torch.optim.ASGD's hyperparameters. State: ax, the averaged parameters (1 plane, zeros to
   start). */
typedef struct FoAsgd {
    double lr;
    double lambd;
    double alpha;
    double t0;
    double weight_decay;
    int32_t maximize;
} FoAsgd;
FO_STATIC_ASSERT(sizeof(FoAsgd) == 48, "FoAsgd layout");

FoAsgd fo_asgd_default(void);
int fo_asgd_validate(const FoAsgd *opt);
size_t fo_asgd_state_len(const FoAsgd *opt, size_t n);
int fo_asgd_init_state(const FoAsgd *opt, float *state, size_t state_len);
int fo_asgd_init_state_ex(const FoAsgd *opt, const FoState *state);

/* ASGD's scalar state (torch's float32 eta and mu), shared by every tensor of a step. */
typedef struct FoAsgdScalars {
    float eta; /* the step size the next step uses */
    float mu;  /* the averaging weight the next step uses (1: ax copies the parameters) */
} FoAsgdScalars;
FO_STATIC_ASSERT(sizeof(FoAsgdScalars) == 8, "FoAsgdScalars layout");

FoAsgdScalars fo_asgd_scalars_default(void);
/* Pass the same *scalars for every tensor of step `step` (step 1 does not read them: torch's
   fresh eta is lr and mu is 1); on success *scalars_after (may be NULL) receives the scalar
   state for step + 1. */
int fo_asgd_step(const FoAsgd *opt, uint64_t step, const FoAsgdScalars *scalars,
                 FoAsgdScalars *scalars_after, float *params, const float *grads, size_t n,
                 float *state, size_t state_len);
int fo_asgd_step_ex(const FoAsgd *opt, uint64_t step, const FoAsgdScalars *scalars,
                    FoAsgdScalars *scalars_after, const FoPiece *piece);

/* torchao's low-bit Adam / AdamW (torchao.optim.AdamW8bit and its siblings, version 0.18): its
   formula with f32 scalars. State: 2 planes (exp_avg, exp_avg_sq), 3 with amsgrad, in any
   format. fo_torchao_adam_state_format_for gives torchao's own choice: opt->format when
   n >= 4096 and n fills whole blocks, otherwise the parameters' format. */
typedef struct FoTorchaoAdam {
    double lr;
    double beta1;
    double beta2;
    double eps;
    double weight_decay;
    int32_t amsgrad;
    int32_t is_adamw; /* decoupled weight decay (the AdamW* classes) */
    int32_t format;   /* the class's block format: FO_STATE_INT8, FO_STATE_INT4 or FO_STATE_FP8 */
} FoTorchaoAdam;
FO_STATIC_ASSERT(sizeof(FoTorchaoAdam) == 56, "FoTorchaoAdam layout");

FoTorchaoAdam fo_torchao_adamw8bit_default(void);
FoTorchaoAdam fo_torchao_adam8bit_default(void);
FoTorchaoAdam fo_torchao_adamw4bit_default(void);
FoTorchaoAdam fo_torchao_adam4bit_default(void);
FoTorchaoAdam fo_torchao_adamw_fp8_default(void);
FoTorchaoAdam fo_torchao_adam_fp8_default(void);
int fo_torchao_adam_validate(const FoTorchaoAdam *opt);
size_t fo_torchao_adam_state_len(const FoTorchaoAdam *opt, size_t n);
int fo_torchao_adam_init_state(const FoTorchaoAdam *opt, float *state, size_t state_len);
int fo_torchao_adam_init_state_ex(const FoTorchaoAdam *opt, const FoState *state);
int fo_torchao_adam_step(const FoTorchaoAdam *opt, uint64_t step, float *params, const float *grads,
                         size_t n, float *state, size_t state_len);
int fo_torchao_adam_step_ex(const FoTorchaoAdam *opt, uint64_t step, const FoPiece *piece);
/* The FO_STATE_* code torchao uses for n values with parameters in param_state_format
   (FO_STATE_F32, FO_STATE_BF16 or FO_STATE_F16), or a negative status. */
int32_t fo_torchao_adam_state_format_for(const FoTorchaoAdam *opt, size_t n,
                                         int32_t param_state_format);

/* torch.optim.SparseAdam's hyperparameters (lr > 0, eps > 0). */
typedef struct FoSparseAdam {
    double lr;
    double beta1;
    double beta2;
    double eps;
    int32_t maximize;
} FoSparseAdam;
FO_STATIC_ASSERT(sizeof(FoSparseAdam) == 40, "FoSparseAdam layout");

FoSparseAdam fo_sparse_adam_default(void);
int fo_sparse_adam_validate(const FoSparseAdam *opt);
size_t fo_sparse_adam_state_len(const FoSparseAdam *opt, size_t n);
int fo_sparse_adam_init_state(const FoSparseAdam *opt, float *state, size_t state_len);
/* One step on the rows of a [n / dim, dim] float table that a sparse gradient touches (lazy
   Adam). indices: n_indices row numbers, strictly increasing (torch's coalesced gradient; sum
   repeated rows first); values: their n_indices * dim gradient values, row-major; state:
   exp_avg then exp_avg_sq, state_len == 2 * n. Only the touched rows are read and written.
   FO_ERR_INVALID_COMBINATION for dim == 0, FO_ERR_LENGTH when n is not a multiple of dim or
   state_len != 2 * n, FO_ERR_INDEX for an index < 0, >= n / dim, or not above the previous. */
int fo_sparse_adam_step(const FoSparseAdam *opt, uint64_t step, float *params, size_t n,
                        size_t dim, const int64_t *indices, size_t n_indices,
                        const float *values, float *state, size_t state_len);

#ifdef __cplusplus
}
#endif

#endif /* FUSED_OPTIM_H */
