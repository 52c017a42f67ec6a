/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A process that loads libraries and does nothing (make bench): linked once with every library
 * rbdcsi links plus librbd/librados, which rbdcsi loads at its first cluster connection
 * (idle-libs: the controller's floor), and once without them (idle-libs-noceph: the node
 * plugin's floor), its RSS is the floor the footprint figures are read against. Waits for a
 * signal.
 */
#include <unistd.h>

int main(void)
{
	pause();
	return 0;
}
