/* scaler.h — placeholder: being written */
#pragma once
