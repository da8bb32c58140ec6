// The card page. (Rotating code rendering is added by the ledger/till work.)
"use strict";
