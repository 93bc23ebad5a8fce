# Regenerates apid/openapi_json.c (the embedded /openapi.json) from apid/openapi.json;
# run from the repository root after editing the JSON, and commit both.
import sys
data=open('apid/openapi.json','rb').read()
out=['/* Generated from apid/openapi.json by apid/openapi_gen.py (python3 apid/openapi_gen.py); do not edit. */','#include <stddef.h>','#include "routes.h"','const char apid_openapi_json[] = {']
for i in range(0,len(data),16):
    out.append(' '+' '.join('0x%02x,'%b for b in data[i:i+16]))
out.append('0x00};')
out.append('const size_t apid_openapi_json_len = sizeof(apid_openapi_json) - 1;')
open('apid/openapi_json.c','w').write('\n'.join(out)+'\n')
