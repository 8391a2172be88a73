/* curlev.h — placeholder: being written */
#pragma once
