/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A process that loads libraries and does nothing (make bench): linked once with every library
 * rbdcsi links (idle-libs) and once without librbd/librados (idle-libs-noceph), its RSS is the
 * floor the footprint figures are read against. Waits for a signal.
 */
#include <unistd.h>

int main(void)
{
	pause();
	return 0;
}
