/* A tiny TFLite external delegate for the tests (built with gcc by tests/test_delegate.py).
 * It claims every node whose builtin op code is in the option `claim` (codes joined by '+',
 * default 9 = FULLY_CONNECTED), except a node fed by a node it already claimed, so each
 * partition is one node; its kernel runs the node's own builtin kernel, so outputs stay right.
 * The structs below are declared from TFLite's documented C API (common.h, "semi-ABI stable":
 * fields are only ever appended), as TFLite's C headers are not in the Python wheels.
 * Option `fail=prepare` makes the delegate's Prepare fail (a delegate that refuses the model). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { kOk = 0, kError = 1 } TfLiteStatus;
typedef struct { int size; int data[]; } TfLiteIntArray;
struct TfLiteContext;
struct TfLiteDelegate;
typedef struct TfLiteNode {
  TfLiteIntArray *inputs, *outputs, *intermediates, *temporaries;
  void *user_data;
  const void *builtin_data;
  const void *custom_initial_data;
  int custom_initial_data_size;
  struct TfLiteDelegate *delegate;
  _Bool might_have_side_effect;
} TfLiteNode;
typedef struct TfLiteRegistration {
  void *(*init)(struct TfLiteContext *, const char *, size_t);
  void (*free)(struct TfLiteContext *, void *);
  TfLiteStatus (*prepare)(struct TfLiteContext *, TfLiteNode *);
  TfLiteStatus (*invoke)(struct TfLiteContext *, TfLiteNode *);
  const char *(*profiling_string)(const struct TfLiteContext *, const TfLiteNode *);
  int32_t builtin_code;
  const char *custom_name;
  int version;
  void *registration_external;
  void *async_kernel;
  uint64_t inplace_operator;
} TfLiteRegistration;
typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext *, TfLiteIntArray **);
  void *tensors;
  void *impl_;
  void *ResizeTensor;
  void (*ReportError)(struct TfLiteContext *, const char *, ...);
  void *AddTensors;
  TfLiteStatus (*GetNodeAndRegistration)(struct TfLiteContext *, int, TfLiteNode **,
                                         TfLiteRegistration **);
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(struct TfLiteContext *, TfLiteRegistration,
                                                        const TfLiteIntArray *,
                                                        struct TfLiteDelegate *);
} TfLiteContext;
typedef struct TfLiteDelegate {
  void *data_;
  TfLiteStatus (*Prepare)(TfLiteContext *, struct TfLiteDelegate *);
  void *CopyFromBufferHandle, *CopyToBufferHandle, *FreeBufferHandle;
  int64_t flags;
  void *opaque_delegate_builder;
} TfLiteDelegate;
typedef struct {
  TfLiteDelegate *delegate;
  TfLiteIntArray *nodes_to_replace, *input_tensors, *output_tensors;
} TfLiteDelegateParams;

typedef struct { int codes[64]; int n; int fail; } Options;
/* a delegate kernel: the replaced node's own kernel, its node copied (the runtime's node
 * storage moves as delegate nodes are added) */
typedef struct {
  TfLiteNode node;
  TfLiteStatus (*prepare)(TfLiteContext *, TfLiteNode *);
  TfLiteStatus (*invoke)(TfLiteContext *, TfLiteNode *);
} Kernel;

static int claims(const Options *o, int code) {
  for (int i = 0; i < o->n; i++) if (o->codes[i] == code) return 1;
  return 0;
}

static void *k_init(TfLiteContext *ctx, const char *buf, size_t len) {
  const TfLiteDelegateParams *p = (const TfLiteDelegateParams *)buf;
  TfLiteNode *node; TfLiteRegistration *reg;
  (void)len;
  if (p->nodes_to_replace->size != 1) return NULL;
  if (ctx->GetNodeAndRegistration(ctx, p->nodes_to_replace->data[0], &node, &reg) != kOk)
    return NULL;
  Kernel *k = calloc(1, sizeof(Kernel));
  k->node = *node;
  k->prepare = reg->prepare;
  k->invoke = reg->invoke;
  return k;
}
static void k_free(TfLiteContext *ctx, void *b) { (void)ctx; free(b); }
static TfLiteStatus k_prepare(TfLiteContext *ctx, TfLiteNode *n) {
  Kernel *k = (Kernel *)n->user_data;
  if (!k) return kError;
  return k->prepare ? k->prepare(ctx, &k->node) : kOk;
}
static TfLiteStatus k_invoke(TfLiteContext *ctx, TfLiteNode *n) {
  Kernel *k = (Kernel *)n->user_data;
  return k->invoke(ctx, &k->node);
}

static TfLiteStatus d_prepare(TfLiteContext *ctx, TfLiteDelegate *d) {
  const Options *o = (const Options *)d->data_;
  TfLiteIntArray *plan;
  if (o->fail) { ctx->ReportError(ctx, "claim_delegate: refused the model (fail=prepare)"); return kError; }
  if (ctx->GetExecutionPlan(ctx, &plan) != kOk) return kError;
  TfLiteIntArray *pick = calloc(1, sizeof(int) * (plan->size + 1));
  int *made = calloc(ctx->tensors_size + 1, sizeof(int)); /* outputs of claimed nodes */
  for (int i = 0; i < plan->size; i++) {
    TfLiteNode *node; TfLiteRegistration *reg;
    if (ctx->GetNodeAndRegistration(ctx, plan->data[i], &node, &reg) != kOk) continue;
    if (!claims(o, reg->builtin_code)) continue;
    int fed = 0;
    for (int j = 0; j < node->inputs->size; j++) {
      int t = node->inputs->data[j];
      if (t >= 0 && (size_t)t < ctx->tensors_size && made[t]) fed = 1;
    }
    if (fed) continue;
    for (int j = 0; j < node->outputs->size; j++) {
      int t = node->outputs->data[j];
      if (t >= 0 && (size_t)t < ctx->tensors_size) made[t] = 1;
    }
    pick->data[pick->size++] = plan->data[i];
  }
  TfLiteRegistration r;
  memset(&r, 0, sizeof(r));
  r.init = k_init; r.free = k_free; r.prepare = k_prepare; r.invoke = k_invoke;
  r.custom_name = "ClaimDelegate";
  r.version = 1;
  TfLiteStatus s = pick->size ? ctx->ReplaceNodeSubsetsWithDelegateKernels(ctx, r, pick, d) : kOk;
  free(pick); free(made);
  return s;
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t n,
                                              void (*report_error)(const char *)) {
  Options *o = calloc(1, sizeof(Options));
  o->codes[o->n++] = 9;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(keys[i], "claim") == 0) {
      o->n = 0;
      for (char *c = values[i]; *c && o->n < 64;) {
        o->codes[o->n++] = atoi(c);
        while (*c && *c != '+') c++;
        if (*c == '+') c++;
      }
    } else if (strcmp(keys[i], "fail") == 0) {
      o->fail = 1;
    } else {
      if (report_error) report_error("claim_delegate: unknown option");
      free(o);
      return NULL;
    }
  }
  TfLiteDelegate *d = calloc(1, sizeof(TfLiteDelegate));
  d->data_ = o;
  d->Prepare = d_prepare;
  return d;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *d) {
  if (!d) return;
  free(d->data_);
  free(d);
}
