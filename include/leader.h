/* leader.h — placeholder: being written */
#pragma once
