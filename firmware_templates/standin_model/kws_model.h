/*
 * kws_model.h - STAND-IN MODEL: the public C API of a generated NanoMamba model, implemented
 * by standin_model.c with deterministic integer work that is NOT a keyword spotter. It
 * exists so the firmware (build, QEMU run, benchmark, flash) is proven end to end before
 * the code generator (issue 5) writes the real model folder, which exposes this same API.
 *
 * Contract (every model folder built by `kws-export build` provides it):
 *   KWS_SAMPLES, KWS_HOP, KWS_N_CLASSES; kws_init, kws_run, kws_run_frontend,
 *   kws_run_network, kws_reset, kws_push_hop, kws_classify, kws_labels.
 * Optional macros read from this header by the host tools (export/firmware.py):
 *   KWS_LOGIT_SCALE, KWS_LOGIT_ZERO_POINT: int8 logit quantization (real = scale * (q - zp)),
 *       used for the confidence (softmax) `kws-export run` prints;
 *   KWS_MACS_PER_INFERENCE: multiply-accumulates per kws_run (bench's MAC/2 lower bound);
 *   KWS_MODEL_NAME: a short name for reports.
 */
#ifndef KWS_MODEL_H
#define KWS_MODEL_H

#include <stdint.h>

#define KWS_SAMPLES 16000      /* int16 samples per 1-s window, 16 kHz */
#define KWS_HOP 160            /* samples per streaming hop (10 ms) */
#define KWS_N_CLASSES 12

#define KWS_MODEL_NAME "standin"
#define KWS_LOGIT_SCALE 0.125
#define KWS_LOGIT_ZERO_POINT 0
#define KWS_MACS_PER_INFERENCE 28992   /* 100 hops x 160 + 100 frames x 16 x 8 + 16 x 12 */

/* kws_init: one-time initialisation at boot (the stand-in has nothing to prepare). */
void kws_init(void);

/* kws_run: classify one window. audio: KWS_SAMPLES int16 PCM samples (16 kHz);
 * logits: out, KWS_N_CLASSES int8 (scale KWS_LOGIT_SCALE). Returns the label index
 * (argmax of logits, the first on ties). Equals kws_run_frontend then kws_run_network. */
int kws_run(const int16_t *audio, int8_t *logits);

/* kws_run_frontend: the front end of kws_run alone (features stored internally);
 * returns 0. */
int kws_run_frontend(const int16_t *audio);

/* kws_run_network: the network of kws_run on the stored features; logits as kws_run;
 * returns the label index. */
int kws_run_network(int8_t *logits);

/* Streaming: kws_reset clears the feature history; kws_push_hop consumes KWS_HOP new
 * samples; kws_classify runs the network on the latest KWS_SAMPLES / KWS_HOP hops and
 * returns the label index (logits as kws_run). reset + all hops of a window + classify
 * gives exactly kws_run's logits. */
void kws_reset(void);
void kws_push_hop(const int16_t *hop);
int kws_classify(int8_t *logits);

/* Class names, in logit order. */
extern const char *const kws_labels[KWS_N_CLASSES];

#endif /* KWS_MODEL_H */
