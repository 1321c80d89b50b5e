/* fused_optim.h: C interface to fused-optim (libfused_optim_capi.a).
 *
 * Fused optimizer steps over float arrays with PyTorch's (torch.optim) hyperparameter names,
 * defaults, validation and order of operations; the same bits as the Rust crate on every
 * backend. No allocation; no function unwinds or panics.
 *
 * For each optimizer X (sgd, adam, adagrad, adadelta, rmsprop, adamax, nadam, radam, lion):
 *   FoX    fo_X_default(void)                       torch's defaults
 *   int    fo_X_validate(const FoX *opt)            FO_OK or the first error
 *   size_t fo_X_state_len(const FoX *opt, size_t n) state floats for n parameters (0 if opt is NULL)
 *   int    fo_X_init_state(const FoX *opt, float *state, size_t state_len)   a fresh state
 *   int    fo_X_step(const FoX *opt, uint64_t step, float *params, const float *grads,
 *                    size_t n, float *state, size_t state_len)              one step
 * Steps are numbered from 1. NAdam's step also takes its scalar state (see fo_nadam_step).
 * Boolean options are int32_t: nonzero means true.
 *
 * Pointers: params and grads hold n floats, state holds state_len floats; each may be NULL only
 * when its length is 0; all must be aligned for float and must not overlap (FO_ERR_OVERLAP).
 * On any error nothing is written.
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

/* A static, NUL-terminated description of a status code (never NULL). */
const char *fo_status_message(int status);

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
int fo_sgd_step(const FoSgd *opt, uint64_t step, float *params, const float *grads,
                size_t n, float *state, size_t state_len);

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
int fo_adam_step(const FoAdam *opt, uint64_t step, float *params, const float *grads,
                 size_t n, float *state, size_t state_len);

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
int fo_adagrad_step(const FoAdagrad *opt, uint64_t step, float *params, const float *grads,
                    size_t n, float *state, size_t state_len);

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
int fo_adadelta_step(const FoAdadelta *opt, uint64_t step, float *params, const float *grads,
                     size_t n, float *state, size_t state_len);

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
int fo_rmsprop_step(const FoRmsprop *opt, uint64_t step, float *params, const float *grads,
                    size_t n, float *state, size_t state_len);

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
int fo_adamax_step(const FoAdamax *opt, uint64_t step, float *params, const float *grads,
                   size_t n, float *state, size_t state_len);

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
int fo_radam_step(const FoRadam *opt, uint64_t step, float *params, const float *grads,
                  size_t n, float *state, size_t state_len);

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
int fo_lion_step(const FoLion *opt, uint64_t step, float *params, const float *grads,
                 size_t n, float *state, size_t state_len);

#ifdef __cplusplus
}
#endif

#endif /* FUSED_OPTIM_H */
