/*
 * Test tool: one decompress job through a QPL library (the fake, or a real libqpl.so.1), with
 * a raw DEFLATE stream on stdin. Prints the job's status and total_out, which the shim folds
 * into "decode this page in software", so tests can check the exact status a device returns.
 *
 *   qpl-decode LIBRARY OUTPUT_BYTES hardware|software < stream
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../vendor-abi.h"

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: qpl-decode LIBRARY OUTPUT_BYTES hardware|software < stream\n");
    return 2;
  }
  void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) {
    fprintf(stderr, "%s\n", dlerror());
    return 2;
  }
  qpl_get_job_size_fn *get_job_size = (qpl_get_job_size_fn *)dlsym(library, "qpl_get_job_size");
  qpl_init_job_fn *init_job = (qpl_init_job_fn *)dlsym(library, "qpl_init_job");
  qpl_job_fn *execute_job = (qpl_job_fn *)dlsym(library, "qpl_execute_job");
  if (get_job_size == NULL || init_job == NULL || execute_job == NULL) {
    fprintf(stderr, "%s lacks a qpl job function\n", argv[1]);
    return 2;
  }
  int path = strcmp(argv[3], "software") == 0 ? QPL_PATH_SOFTWARE : QPL_PATH_HARDWARE;
  static unsigned char in[1 << 20];
  size_t in_len = fread(in, 1, sizeof in, stdin);
  uint32_t out_len = (uint32_t)strtoul(argv[2], NULL, 10), job_size = 0;
  unsigned char *out = malloc(out_len + 1);
  int rc = get_job_size(path, &job_size);
  qpl_job *job = rc == QPL_STS_OK ? calloc(1, job_size) : NULL;
  if (job != NULL && (rc = init_job(path, job)) == QPL_STS_OK) {
    job->op = QPL_OP_DECOMPRESS;
    job->flags = QPL_FLAG_FIRST | QPL_FLAG_LAST | QPL_FLAG_OMIT_VERIFY;
    job->next_in_ptr = in;
    job->available_in = (uint32_t)in_len;
    job->next_out_ptr = out;
    job->available_out = out_len;
    rc = execute_job(job);
  }
  printf("%d %u\n", rc, job != NULL ? job->total_out : 0);
  return 0;
}
