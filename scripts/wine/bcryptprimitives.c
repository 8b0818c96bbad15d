/* ProcessPrng, which Rust's standard library takes from bcryptprimitives.dll on Windows 10 and
   later and Wine 8 lacks, over RtlGenRandom (advapi32's SystemFunction036). Only for running
   the cross-built wgtune.exe under Wine 8. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
