/* test_pause.c - unit tests for vCPU pause/resume with fake vCPU threads (no KVM needed). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "vmm/vm_internal.h"

#define NVCPUS 3

/*
 * A fake vCPU thread runs the real pause point and exit accounting; its
 * "KVM_RUN" is a loop iteration that counts itself and, like KVM_RUN,
 * returns at once (clearing the flag) when immediate_exit is set.
 */
struct fake {
	struct vm *vm;
	struct kvm_run runs[NVCPUS];
	uint64_t iters[NVCPUS];
	int exit_at_once[NVCPUS]; /* return before the loop, like a vCPU that failed */
	int in_guest[NVCPUS];     /* "KVM_RUN" never exits by itself: only a kick ends it */
	uint64_t kicks[NVCPUS];   /* runs ended by immediate_exit */
	int entered[NVCPUS];      /* in "the guest" at least once */
};

static struct fake *fk;

static void *fake_vcpu(void *arg)
{
	struct vcpu *v = arg;
	unsigned int id = v->kf.id;

	if (fk->exit_at_once[id]) {
		vcpu_thread_exit(v);
		return NULL;
	}
	while (vcpu_pause_point(v)) {
		if (fk->in_guest[id]) {
			struct timespec ts = {0, 2000000};

			__atomic_store_n(&fk->entered[id], 1, __ATOMIC_SEQ_CST);
			while (!__atomic_load_n(&v->kf.run->immediate_exit, __ATOMIC_SEQ_CST))
				nanosleep(&ts, NULL); /* the kick's signal ends it early */
			__atomic_store_n(&v->kf.run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			__atomic_add_fetch(&fk->kicks[id], 1, __ATOMIC_RELAXED);
			continue;
		}
		if (__atomic_load_n(&v->kf.run->immediate_exit, __ATOMIC_SEQ_CST)) {
			__atomic_store_n(&v->kf.run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			continue; /* EINTR */
		}
		__atomic_add_fetch(&fk->iters[id], 1, __ATOMIC_RELAXED);
		sched_yield();
	}
	vcpu_thread_exit(v);
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig;
}

static struct vm *fake_vm(void)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	unsigned int i;

	fk = calloc(1, sizeof(*fk));
	if (!vm || !fk)
		abort();
	fk->vm = vm;
	vm->stop_fd = -1;
	pthread_mutex_init(&vm->exit_lock, NULL);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	vm->nvcpus_created = NVCPUS;
	for (i = 0; i < NVCPUS; i++) {
		vm->vcpus[i].vm = vm;
		vm->vcpus[i].kf.id = i;
		vm->vcpus[i].kf.run = &fk->runs[i];
	}
	return vm;
}

/* As vm_run() does: the thread first, then `started`. */
static void start_vcpus(struct vm *vm)
{
	unsigned int i;

	for (i = 0; i < NVCPUS; i++) {
		if (pthread_create(&vm->vcpus[i].thread, NULL, fake_vcpu, &vm->vcpus[i]) != 0)
			abort();
		vm->vcpus[i].started = true;
	}
}

/* Join every vCPU thread within 5 s; false if one is still running. */
static bool join_vcpus(struct vm *vm)
{
	struct timespec ts;
	unsigned int i;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	for (i = 0; i < NVCPUS; i++) {
		if (!vm->vcpus[i].started)
			continue;
		if (pthread_timedjoin_np(vm->vcpus[i].thread, NULL, &ts) != 0)
			ok = false;
		else
			vm->vcpus[i].started = false;
	}
	return ok;
}

static void free_vm(struct vm *vm)
{
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->pause_lock);
	pthread_mutex_destroy(&vm->exit_lock);
	free(vm);
	free(fk);
	fk = NULL;
}

static uint64_t iters(unsigned int i)
{
	return __atomic_load_n(&fk->iters[i], __ATOMIC_RELAXED);
}

static unsigned int nparked(struct vm *vm)
{
	unsigned int n;

	pthread_mutex_lock(&vm->pause_lock);
	n = vm->nparked;
	pthread_mutex_unlock(&vm->pause_lock);
	return n;
}

/* Wait (up to 5 s) until every vCPU has iterated at least `n` times more than `base`. */
static bool all_ran_since(const uint64_t *base, uint64_t n)
{
	uint64_t t0 = clock_ns();
	unsigned int i;

	for (;;) {
		for (i = 0; i < NVCPUS && iters(i) >= (base ? base[i] : 0) + n; i++)
			;
		if (i == NVCPUS)
			return true;
		if (clock_ns() - t0 > 5000000000ull)
			return false;
		usleep(1000);
	}
}

static bool all_ran(uint64_t n)
{
	return all_ran_since(NULL, n);
}

TEST(pause_parks_every_vcpu_and_resume_releases)
{
	struct vm *vm = fake_vm();
	struct err e = {0};
	uint64_t before[NVCPUS];
	unsigned int i;

	start_vcpus(vm);
	CHECK(all_ran(10));
	CHECK(!vm_paused(vm));
	CHECK_EQ(vm_pause(vm, &e), 0);
	CHECK(vm_paused(vm));
	CHECK_EQ(nparked(vm), NVCPUS);
	for (i = 0; i < NVCPUS; i++)
		before[i] = iters(i);
	usleep(30000);
	for (i = 0; i < NVCPUS; i++)
		CHECK_EQ(iters(i), before[i]); /* nobody runs while paused */
	/* Idempotent: a second pause returns at once, still parked. */
	CHECK_EQ(vm_pause(vm, &e), 0);
	CHECK_EQ(nparked(vm), NVCPUS);

	CHECK_EQ(vm_resume(vm, &e), 0);
	CHECK(!vm_paused(vm));
	CHECK(all_ran_since(before, 10));
	CHECK_EQ(vm_resume(vm, &e), 0); /* idempotent */
	CHECK_EQ(nparked(vm), 0);

	/* Again: pause, resume, pause in a row. */
	CHECK_EQ(vm_pause(vm, &e), 0);
	CHECK_EQ(vm_resume(vm, &e), 0);
	CHECK_EQ(vm_pause(vm, &e), 0);
	CHECK_EQ(nparked(vm), NVCPUS);
	CHECK_EQ(vm_resume(vm, &e), 0);

	vm_request_stop(vm, VM_STOP_SIGNAL, "test over");
	CHECK(join_vcpus(vm));
	CHECK_EQ(vm->nexited, NVCPUS);
	free_vm(vm);
}

TEST(pause_kicks_out_of_kvm_run)
{
	struct vm *vm = fake_vm();
	struct err e = {0};
	unsigned int i;
	uint64_t t0;

	for (i = 0; i < NVCPUS; i++)
		fk->in_guest[i] = 1; /* a guest spinning without exits */
	start_vcpus(vm);
	/* Every vCPU in "the guest" first: one that has not got there yet parks at its pause
	 * point without a kick, which is right but not what this test is about. */
	t0 = clock_ns();
	for (i = 0; i < NVCPUS; i++)
		while (!__atomic_load_n(&fk->entered[i], __ATOMIC_SEQ_CST) &&
		       clock_ns() - t0 < 5000000000ull)
			usleep(1000);
	t0 = clock_ns();
	CHECK_EQ(vm_pause(vm, &e), 0);
	CHECK(clock_ns() - t0 < 1000000000ull);
	CHECK_EQ(nparked(vm), NVCPUS);
	for (i = 0; i < NVCPUS; i++)
		CHECK_EQ(__atomic_load_n(&fk->kicks[i], __ATOMIC_RELAXED), 1);
	/* Already paused: no second kick. */
	CHECK_EQ(vm_pause(vm, &e), 0);
	for (i = 0; i < NVCPUS; i++)
		CHECK_EQ(fk->runs[i].immediate_exit, 0);
	vm_request_stop(vm, VM_STOP_SIGNAL, "stop");
	CHECK(join_vcpus(vm));
	free_vm(vm);
}

TEST(stop_while_paused_releases_parked_vcpus)
{
	struct vm *vm = fake_vm();
	struct err e = {0};

	start_vcpus(vm);
	CHECK_EQ(vm_pause(vm, &e), 0);
	CHECK_EQ(nparked(vm), NVCPUS);
	vm_request_stop(vm, VM_STOP_SIGNAL, "shutdown while paused");
	CHECK(join_vcpus(vm)); /* no resume needed */
	CHECK_EQ(vm->nexited, NVCPUS);
	CHECK_EQ(nparked(vm), 0);
	/* A stopping VM cannot be paused any more; resume is harmless. */
	CHECK_EQ(vm_pause(vm, &e), -ESHUTDOWN);
	CHECK_STR_CONTAINS(e.msg, "stopping");
	CHECK_EQ(vm_resume(vm, &e), 0);
	free_vm(vm);
}

TEST(paused_before_start_parks_before_running)
{
	struct vm *vm = fake_vm();
	struct err e = {0};
	uint64_t t0;
	unsigned int i;

	CHECK_EQ(vm_pause(vm, &e), 0); /* no vCPU started: returns at once */
	CHECK(vm_paused(vm));
	start_vcpus(vm);
	t0 = clock_ns();
	while (nparked(vm) < NVCPUS && clock_ns() - t0 < 5000000000ull)
		usleep(1000);
	CHECK_EQ(nparked(vm), NVCPUS);
	for (i = 0; i < NVCPUS; i++)
		CHECK_EQ(iters(i), 0);
	CHECK_EQ(vm_pause(vm, &e), 0);
	CHECK_EQ(vm_resume(vm, &e), 0);
	CHECK(all_ran(5));
	vm_request_stop(vm, VM_STOP_SIGNAL, "stop");
	CHECK(join_vcpus(vm));
	free_vm(vm);
}

TEST(pause_counts_exited_vcpus)
{
	struct vm *vm = fake_vm();
	struct err e = {0};
	uint64_t t0;

	fk->exit_at_once[1] = 1; /* a vCPU whose thread already returned */
	start_vcpus(vm);
	t0 = clock_ns();
	while (clock_ns() - t0 < 5000000000ull) {
		unsigned int n;

		pthread_mutex_lock(&vm->pause_lock);
		n = vm->nexited;
		pthread_mutex_unlock(&vm->pause_lock);
		if (n == 1)
			break;
		usleep(1000);
	}
	CHECK_EQ(vm_pause(vm, &e), 0); /* does not wait for the one that is gone */
	CHECK_EQ(nparked(vm), NVCPUS - 1);
	vm_request_stop(vm, VM_STOP_SIGNAL, "stop");
	CHECK(join_vcpus(vm));
	CHECK_EQ(vm->nexited, NVCPUS);
	free_vm(vm);
}

int main(void)
{
	struct sigaction sa = {.sa_handler = kick_handler};

	/* vm_run() installs this handler: the kick must only interrupt. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	RUN(pause_parks_every_vcpu_and_resume_releases);
	RUN(pause_kicks_out_of_kvm_run);
	RUN(stop_while_paused_releases_parked_vcpus);
	RUN(paused_before_start_parks_before_running);
	RUN(pause_counts_exited_vcpus);
	return test_summary();
}
