/* scale.h — placeholder: being written */
#pragma once
